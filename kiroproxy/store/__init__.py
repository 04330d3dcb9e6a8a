"""What the proxy keeps on disk: locked atomic JSON files, the flow store, the Responses store, stats.

Every file is written atomically; each store guards its state with its own lock.
"""
from __future__ import annotations
