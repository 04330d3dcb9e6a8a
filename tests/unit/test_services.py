"""The object graph: typed parts, built in one place, overrides by name, nothing rewired later."""
from __future__ import annotations

import dataclasses

import pytest

from kiroproxy import config
from kiroproxy.relay import Relay
from kiroproxy.services import Services
from kiroproxy.store.stats import Stats


@pytest.fixture
def settings(tmp_path):
    return config.load({"data_dir": str(tmp_path / "data"), "port": 0}, env={})


def test_every_part_is_a_declared_field(settings):
    services = Services.build(settings)
    try:
        names = {f.name for f in dataclasses.fields(Services)}
        assert {"pool", "refresher", "client", "catalog", "relay", "flows", "stats", "monitor"} <= names
        assert set(vars(services)) == names  # nothing set beside the declared fields
        assert isinstance(services.relay, Relay)
        assert services.relay.on_exhausted is not None and services.listen == settings.listen
    finally:
        services.close()


def test_an_override_replaces_a_part_and_an_unknown_one_is_refused(settings, tmp_path):
    stats = Stats(tmp_path / "stats.json")
    services = Services.build(settings, stats=stats)
    try:
        assert services.stats is stats
    finally:
        services.close()
    with pytest.raises(TypeError):
        Services.build(settings, no_such_part=object())


def test_start_records_the_bound_address_and_hands_the_refresher_its_tasks(settings):
    services = Services.build(settings)
    try:
        assert services.refresher.tasks == ()
        services.start(listen="127.0.0.1:4321")
        assert services.listen == "127.0.0.1:4321"
        assert len(services.refresher.tasks) == 3 and services.keys.flush_usage in services.refresher.tasks
    finally:
        services.close()
