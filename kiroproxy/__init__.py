"""kiroproxy: serve the OpenAI, Anthropic and Gemini APIs on top of Kiro accounts.

Importing the package has no side effects: no files read, no threads, no tokenizer.
"""
from __future__ import annotations

__version__ = "0.1.0"
