"""The Kiro upstream: payload builder, event-stream decoder, event translator, HTTP client, auth.

Kiro's camelCase vocabulary stays inside this package.
"""
from __future__ import annotations
