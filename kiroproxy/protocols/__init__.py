"""The client protocols: Anthropic Messages, OpenAI Chat and Responses, Gemini.

Each is one class behind the typed interface in interface.py: parse a body into the neutral request
and its options, render a reply, encode a stream, shape an error, describe a model. fields.py reads
the settings they share one way. Pure: no Flask, no sockets; a clock or a store is handed in.
"""
from __future__ import annotations
