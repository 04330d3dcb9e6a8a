"""config.example.json stays valid and documents every setting."""
from __future__ import annotations

import json
from pathlib import Path

from kiroproxy.config import FIELDS, read_file, validate

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.json"


def test_example_is_a_valid_config():
    settings = validate(read_file(EXAMPLE))
    assert settings.host == "127.0.0.1"


def test_every_setting_is_documented():
    documented = set(json.loads(EXAMPLE.read_text())["_doc"])
    assert documented == set(FIELDS) - {"data_dir"}
