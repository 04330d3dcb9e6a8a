"""The client protocols: Anthropic Messages, OpenAI Chat and Responses, Gemini.

Each turns its JSON into the neutral chat model and neutral events back into its JSON or SSE.
Pure: no Flask, no sockets, no clock.
"""
from __future__ import annotations
