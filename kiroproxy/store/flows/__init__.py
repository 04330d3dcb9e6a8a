"""The flow store: one custom database of every request's record, as append-only index logs and
one compressed body file per flow, listed from memory and searched from disk.

store (FlowStore, the one entry point), writer (the thread that stores), records (exchange ->
flow), segments (the files), index (what is written, and the caps), recovery (opening after a
crash), queries (filters, paging, search, summaries).
"""
from __future__ import annotations

from .queries import Budget, Filter, filter_from, paging, summarize
from .store import FlowStore

__all__ = ["Budget", "Filter", "FlowStore", "filter_from", "paging", "summarize"]
