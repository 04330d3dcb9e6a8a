"""app.Route: werkzeug's URL builders compile on first use, and build the same URLs as werkzeug's own
rules."""
from __future__ import annotations

import pytest
from werkzeug.routing import Map, Rule

from kiroproxy import app as app_module
from kiroproxy.config import validate


@pytest.fixture
def flask_app(tmp_path):
    settings = validate({"data_dir": str(tmp_path), "admin_key": "a" * 32})
    built = app_module.create_app(settings)
    yield built
    built.extensions["kiroproxy"].close()


def test_creating_the_app_compiles_no_url_builder(tmp_path, monkeypatch):
    calls = []
    original = Rule._compile_builder
    monkeypatch.setattr(Rule, "_compile_builder", lambda rule, *a, **kw: calls.append(rule) or original(rule, *a, **kw))
    settings = validate({"data_dir": str(tmp_path), "admin_key": "a" * 32})
    built = app_module.create_app(settings)
    try:
        assert len(list(built.url_map.iter_rules())) > 20 and calls == []
        built.url_map.bind("localhost").build("proxy.messages", method="POST")
        assert calls  # compiled when first needed
    finally:
        built.extensions["kiroproxy"].close()


def test_every_route_builds_the_url_werkzeug_builds(flask_app):
    rules = list(flask_app.url_map.iter_rules())
    eager = Map([Rule(r.rule, endpoint=f"{r.endpoint}|{r.rule}", methods=r.methods) for r in rules])
    lazy = Map([app_module.Route(r.rule, endpoint=f"{r.endpoint}|{r.rule}", methods=r.methods) for r in rules])
    urls = 0
    for rule in rules:
        for value in ("x-y z/ü", "generateContent"):  # the second one is the only kind `any` takes
            for extra in ({}, {"extra": "a b"}):
                args = {name: value for name in rule.arguments} | extra
                method = sorted(rule.methods - {"HEAD", "OPTIONS"} or rule.methods)[0]
                endpoint = f"{rule.endpoint}|{rule.rule}"
                url = built(lazy, endpoint, args, method)
                assert url == built(eager, endpoint, args, method)
                urls += isinstance(url, str)
    assert urls > 3 * len(rules)  # most combinations build a URL (only `any` refuses values)


def built(routes: Map, endpoint: str, args: dict, method: str) -> object:
    try:
        return routes.bind("localhost").build(endpoint, args, method=method)
    except ValueError as exc:  # a value the rule's converter refuses
        return ("refused", repr(exc))
