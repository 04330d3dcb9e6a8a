"""Fixtures for the flow store tests: a settable clock and FlowStores on a temporary folder."""
from __future__ import annotations

from typing import Callable, List, Optional

import pytest

from kiroproxy.store.flows import FlowStore
from kiroproxy.store.stats import Stats
from tests.unit.store.flows.test_records import T0


class FakeClock:
    def __init__(self, now: float = T0 + 60) -> None:
        self.now = now
        self.hook: Optional[Callable[[], None]] = None  # runs once, the next time the clock is read

    def __call__(self) -> float:
        hook, self.hook = self.hook, None
        if hook is not None:
            hook()
        return self.now


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def open_store(tmp_path, clock):
    """open_store(**options) -> a FlowStore on tmp_path/flows; every one is closed at the end."""
    made: List[FlowStore] = []

    def make(**options) -> FlowStore:
        stats = Stats(tmp_path / "stats.json", clock=clock)
        store = FlowStore(tmp_path / "flows", stats, clock=clock, **options)
        made.append(store)
        return store

    make.kill = made.remove  # a killed store is never closed: it just stops
    yield make
    for store in made:
        store.close()
