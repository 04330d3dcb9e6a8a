"""Tests for config: defaults < config.json < KIROPROXY_* env < flags, with explicit env dicts only."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from kiroproxy import config
from kiroproxy.config import ConfigError


def home_with(tmp_path: Path, content=None) -> dict:
    """An env dict whose data dir is a fresh folder, optionally holding a config.json."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    if content is not None:
        data = content if isinstance(content, str) else json.dumps(content)
        (home / "config.json").write_text(data, encoding="utf-8")
    return {"KIROPROXY_HOME": str(home)}


def test_defaults(tmp_path):
    settings = config.load(env=home_with(tmp_path))
    assert (settings.host, settings.port, settings.threads, settings.max_streams) == ("127.0.0.1", 8080, 16, 64)
    assert settings.api_keys == [] and settings.admin_key is None
    assert settings.model_aliases == {}
    assert settings.cooldown_seconds == 180.0 and settings.sticky_sessions is True  # "a few minutes"
    assert settings.shutdown_grace_seconds == 5.0
    assert settings.data_dir == str(tmp_path / "home")
    assert settings.listen == "127.0.0.1:8080"


def test_each_layer_overrides_the_one_below(tmp_path):
    env = home_with(tmp_path, {"port": 9000, "host": "0.0.0.0", "threads": 8})
    env.update(KIROPROXY_PORT="9001", KIROPROXY_HOST="127.0.0.2")
    settings = config.load({"port": 9002}, env=env)
    assert (settings.port, settings.host, settings.threads) == (9002, "127.0.0.2", 8)
    assert config.load(env=env).port == 9001
    del env["KIROPROXY_PORT"]
    assert config.load(env=env).port == 9000


def test_flags_left_unset_do_not_override(tmp_path):
    env = home_with(tmp_path, {"port": 9000})
    assert config.load({"port": None, "host": None}, env=env).port == 9000


def test_kiroproxy_home_sets_the_data_dir(tmp_path):
    env = {"KIROPROXY_HOME": str(tmp_path / "kp"), "HOME": str(tmp_path / "user")}
    assert config.data_dir(env) == tmp_path / "kp"
    assert config.load(env=env).home == tmp_path / "kp"


def test_home_is_used_without_kiroproxy_home(tmp_path):
    env = {"HOME": str(tmp_path / "user")}
    assert config.data_dir(env) == tmp_path / "user" / ".kiro-proxy"
    (tmp_path / "user" / ".kiro-proxy").mkdir(parents=True)
    (tmp_path / "user" / ".kiro-proxy" / "config.json").write_text('{"port": 7001}')
    settings = config.load(env=env)
    assert settings.port == 7001
    assert settings.data_dir == str(tmp_path / "user" / ".kiro-proxy")


def test_empty_kiroproxy_home_falls_back_to_home(tmp_path):
    assert config.data_dir({"KIROPROXY_HOME": "", "HOME": str(tmp_path)}) == tmp_path / ".kiro-proxy"


def test_data_dir_flag_wins_and_its_config_json_is_read(tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text('{"port": 7100}')
    env = home_with(tmp_path, {"port": 7000})
    settings = config.load({"data_dir": str(other)}, env=env)
    assert (settings.data_dir, settings.port) == (str(other), 7100)


def test_data_dir_is_not_taken_from_a_kiroproxy_data_dir_variable(tmp_path):
    env = home_with(tmp_path)
    env["KIROPROXY_DATA_DIR"] = str(tmp_path / "elsewhere")
    assert config.load(env=env).data_dir == str(tmp_path / "home")


def test_underscore_keys_are_documentation(tmp_path):
    env = home_with(tmp_path, {"_doc": "see README", "_": "note", "_port": "ignored", "port": 8123})
    assert config.load(env=env).port == 8123


def test_missing_config_file_is_fine_and_empty_file_is_empty(tmp_path):
    assert config.load(env=home_with(tmp_path)).port == 8080
    assert config.load(env=home_with(tmp_path, "")).port == 8080


@pytest.mark.parametrize("where", ["file", "flags"])
def test_unknown_key_is_a_config_error_naming_it(tmp_path, where):
    env = home_with(tmp_path, {"prot": 9000} if where == "file" else None)
    flags = {"prot": 9000} if where == "flags" else None
    with pytest.raises(ConfigError, match="prot"):
        config.load(flags, env=env)


def test_unknown_environment_variables_are_ignored(tmp_path):
    env = home_with(tmp_path)
    env.update(KIROPROXY_NOT_A_SETTING="x", PATH="/bin")
    assert config.load(env=env).port == 8080


@pytest.mark.parametrize("layer, key, value", [
    ("env", "port", "eighty"),
    ("env", "threads", "0"),
    ("env", "sticky_sessions", "maybe"),
    ("env", "cooldown_seconds", "-1"),
    ("env", "shutdown_grace_seconds", "-1"),
    ("file", "port", 70000),
    ("file", "max_body_bytes", "small"),
    ("file", "model_aliases", ["not", "a", "dict"]),
    ("flags", "read_timeout", 0),
])
def test_bad_types_are_config_errors_naming_the_key(tmp_path, layer, key, value):
    env = home_with(tmp_path, {key: value} if layer == "file" else None)
    if layer == "env":
        env["KIROPROXY_" + key.upper()] = value
    flags = {key: value} if layer == "flags" else None
    with pytest.raises(ConfigError) as caught:
        config.load(flags, env=env)
    assert key in str(caught.value)


def test_invalid_config_json_names_the_file(tmp_path):
    env = home_with(tmp_path, "{port: 1")
    with pytest.raises(ConfigError, match="config.json"):
        config.load(env=env)


def test_config_json_must_be_an_object(tmp_path):
    with pytest.raises(ConfigError, match="object"):
        config.load(env=home_with(tmp_path, "[1, 2]"))


def test_env_values_are_parsed_to_the_field_types(tmp_path):
    env = home_with(tmp_path)
    env.update(KIROPROXY_PORT="8099", KIROPROXY_STICKY_SESSIONS="false", KIROPROXY_MIN_INTERVAL_SECONDS="0.5",
               KIROPROXY_ADMIN_KEY="adm", KIROPROXY_KIRO_API_URL="http://127.0.0.1:9")
    settings = config.load(env=env)
    assert (settings.port, settings.sticky_sessions, settings.min_interval_seconds) == (8099, False, 0.5)
    assert (settings.admin_key, settings.kiro_api_url) == ("adm", "http://127.0.0.1:9")


@pytest.mark.parametrize("raw", ["", "  "])
def test_an_empty_env_value_is_unset_and_keeps_config_json(tmp_path, raw):
    env = home_with(tmp_path, {"admin_key": "from-file", "port": 9000, "api_keys": ["k1"]})
    env.update(KIROPROXY_ADMIN_KEY=raw, KIROPROXY_PORT=raw, KIROPROXY_API_KEYS=raw, KIROPROXY_HOST=raw)
    settings = config.load(env=env)
    assert (settings.admin_key, settings.port, settings.api_keys) == ("from-file", 9000, ["k1"])
    assert settings.host == "127.0.0.1"


def test_an_empty_env_value_is_unset_without_config_json(tmp_path):
    env = home_with(tmp_path)
    env.update(KIROPROXY_ADMIN_KEY="", KIROPROXY_PORT="", KIROPROXY_SHUTDOWN_GRACE_SECONDS="")
    settings = config.load(env=env)
    assert (settings.admin_key, settings.port, settings.shutdown_grace_seconds) == (None, 8080, 5.0)


def test_a_blank_kiroproxy_home_is_unset(tmp_path):
    assert config.data_dir({"KIROPROXY_HOME": " ", "HOME": str(tmp_path)}) == tmp_path / ".kiro-proxy"


def test_json_env_value_for_a_dict(tmp_path):
    env = home_with(tmp_path)
    env["KIROPROXY_MODEL_ALIASES"] = '{"gpt-4o": "fast", "my-model": "claude-opus-4.6"}'
    assert config.load(env=env).model_aliases == {"gpt-4o": "fast", "my-model": "claude-opus-4.6"}


def test_bad_json_env_value_names_the_variable(tmp_path):
    env = home_with(tmp_path)
    env["KIROPROXY_MODEL_ALIASES"] = '{"gpt-4o": '
    with pytest.raises(ConfigError, match="KIROPROXY_MODEL_ALIASES"):
        config.load(env=env)


def test_non_json_env_value_for_a_dict_names_the_key(tmp_path):
    env = home_with(tmp_path)
    env["KIROPROXY_MODEL_ALIASES"] = "gpt-4o=fast"
    with pytest.raises(ConfigError, match="model_aliases"):
        config.load(env=env)


@pytest.mark.parametrize("raw, keys", [
    ("k1,k2", ["k1", "k2"]),
    (" k1 , k2,, k3 ", ["k1", "k2", "k3"]),
    ("single", ["single"]),
    ("", []),
    ('["j1", "j2,with-comma"]', ["j1", "j2,with-comma"]),
])
def test_api_keys_from_a_comma_list_or_json(tmp_path, raw, keys):
    env = home_with(tmp_path)
    env["KIROPROXY_API_KEYS"] = raw
    assert config.load(env=env).api_keys == keys


def test_api_keys_as_a_list_in_config_json(tmp_path):
    assert config.load(env=home_with(tmp_path, {"api_keys": ["a", "b"]})).api_keys == ["a", "b"]


def test_settings_are_frozen(tmp_path):
    settings = config.load(env=home_with(tmp_path))
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.port = 1


def test_validate_directly():
    assert config.validate({"port": 0}).port == 0
    with pytest.raises(ConfigError, match="port"):
        config.validate({"port": -1})


def test_read_file_drops_documentation_keys(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{"_comment": "x", "port": 1}')
    assert config.read_file(path) == {"port": 1}
    assert config.read_file(tmp_path / "missing.json") == {}


@pytest.mark.parametrize("value", ["not a url", "ftp://host:21", "http://", "http://host:99999"])
def test_a_bad_global_proxy_url_is_a_config_error_naming_it(tmp_path, value):
    with pytest.raises(ConfigError, match="proxy_url"):
        config.load(env=home_with(tmp_path, {"proxy_url": value}))


def test_a_good_global_proxy_url_is_kept_and_empty_means_none(tmp_path):
    env = home_with(tmp_path, {"proxy_url": "socks5h://user:pw@gateway:1080"})
    assert config.load(env=env).proxy_url == "socks5h://user:pw@gateway:1080"
    assert config.load(env={**env, "KIROPROXY_PROXY_URL": ""}).proxy_url == "socks5h://user:pw@gateway:1080"
    assert config.load({"proxy_url": ""}, env=env).proxy_url is None


@pytest.mark.parametrize("host, url", [
    ("0.0.0.0", "http://127.0.0.1:8080"), ("", "http://127.0.0.1:8080"), ("::", "http://[::1]:8080"),
    ("::1", "http://[::1]:8080"), ("192.168.1.5", "http://192.168.1.5:8080"),
])
def test_the_local_url_of_a_listen_address(host, url):
    from kiroproxy.server import local_url
    assert local_url(host, 8080) == url
