"""`client claude | codex | gemini | cline | continue [--write] [--key KEY]`: the exact settings
that connect a client to this server (its address from server.json, else the configured one).
--write writes the client's config file where one exists (Claude Code's settings.json env, Codex's
config.toml, Gemini CLI's settings.json, Continue's config.yaml), keeping the previous file as .bak;
JSON settings are merged, their other keys kept. Cline is set up by its own command."""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

from ..config import Settings
from ..errors import ProxyError
from ..server import local_url, owner
from ..store.jsondb import write_atomic
from ..store.keys import KeyStore
from . import options
from .table import emit

ANY_KEY = "sk-anything"
NEEDS_KEY = "<a client key: kiroproxy keys create>"


def register(commands: Any) -> None:
    client = options.command(commands, "client", "print (or --write) the settings that connect a client",
                             "kiroproxy client claude\nkiroproxy client codex --write --key sk-kp-...",
                             parents=[options.common()])
    client.add_argument("name", choices=sorted(SNIPPETS), help="the client")
    client.add_argument("--write", action="store_true", help="write the client's config file (a backup is kept)")
    client.add_argument("--key", help="the client key to fill in (default: any key while none are configured)")
    client.set_defaults(run=run_client)


def server_url(settings: Settings, given: Optional[str]) -> str:
    if given:
        return given.rstrip("/")
    running = owner(settings.home)
    return running.url if running is not None else local_url(settings.host, settings.port)


def claude(url: str, key: str) -> Tuple[str, Optional[Tuple[Path, Callable[[Optional[str]], str]]]]:
    # ANTHROPIC_AUTH_TOKEN (sent as a Bearer header) rather than ANTHROPIC_API_KEY: Claude Code asks
    # once, interactively, whether to trust an API key found in its settings.
    env = {"ANTHROPIC_BASE_URL": url, "ANTHROPIC_AUTH_TOKEN": key, "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"}
    path = Path(os.environ.get("CLAUDE_CONFIG_DIR") or Path.home() / ".claude") / "settings.json"
    text = (f"ANTHROPIC_BASE_URL={url} ANTHROPIC_AUTH_TOKEN={key} \\\n"
            f"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 claude\n"
            f"# or, with --write, in {path}:\n{json.dumps({'env': env})}\n# then:\nclaude")
    return text, (path, lambda old: merge_json(path, old, {"env": env}))


def codex(url: str, key: str) -> Tuple[str, Optional[Tuple[Path, Callable[[Optional[str]], str]]]]:
    toml = f"""model = "gpt-5"
model_provider = "kiroproxy"

[model_providers.kiroproxy]
name = "kiroproxy"
base_url = "{url}/v1"
env_key = "PROXY_API_KEY"
wire_api = "responses"

[analytics]
enabled = false
[feedback]
enabled = false
[features]
plugins = false
remote_plugin = false
apps = false
"""
    home = Path(os.environ.get("CODEX_HOME") or Path.home() / ".codex")
    text = f"# {home / 'config.toml'}\n{toml}\n# then:\nPROXY_API_KEY={key} codex"
    return text, (home / "config.toml", lambda _old: toml)


def gemini(url: str, key: str) -> Tuple[str, Optional[Tuple[Path, Callable[[Optional[str]], str]]]]:
    wanted = {"security": {"auth": {"selectedType": "gemini-api-key"}},
              "privacy": {"usageStatisticsEnabled": False}, "telemetry": {"enabled": False},
              "general": {"enableAutoUpdate": False, "enableAutoUpdateNotification": False}}
    path = Path.home() / ".gemini" / "settings.json"

    text = (f"# {path}\n{json.dumps(wanted)}\n# then:\n"
            f"GEMINI_API_KEY={key} GOOGLE_GEMINI_BASE_URL={url} gemini")
    return text, (path, lambda old: merge_json(path, old, wanted))


def merge_json(path: Path, old: Optional[str], wanted: Dict[str, Any]) -> str:
    """`old` (a JSON settings file's text, or None) with `wanted`'s sections merged in, keys kept."""
    try:
        data: Any = json.loads(old) if old and old.strip() else {}
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise ProxyError(f"{path} does not hold a JSON object; not touching it")
    for section, values in wanted.items():
        current = data.get(section) if isinstance(data.get(section), dict) else {}
        data[section] = _deep(current, values)
    return json.dumps(data, indent=2) + "\n"


def _deep(current: Dict[str, Any], values: Dict[str, Any]) -> Dict[str, Any]:
    out = dict(current)
    for k, v in values.items():
        out[k] = _deep(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def cline(url: str, key: str) -> Tuple[str, Optional[Tuple[Path, Callable[[Optional[str]], str]]]]:
    return (f"cline auth -p openai -k {key} -m claude-sonnet-4.5 -b {url}/v1\n"
            'DO_NOT_TRACK=1 cline "..."\n'
            f"# VS Code extension: provider \"OpenAI Compatible\", base URL {url}/v1, the key, any model id"), None


def continue_(url: str, key: str) -> Tuple[str, Optional[Tuple[Path, Callable[[Optional[str]], str]]]]:
    yaml = f"""name: kiroproxy
version: 0.0.1
schema: v1
models:
  - name: kiroproxy
    provider: openai
    model: claude-sonnet-4.5
    apiBase: {url}/v1
    apiKey: {key}
    roles: [chat, edit, apply]
"""
    path = Path.home() / ".continue" / "config.yaml"
    return f"# {path}\n{yaml}", (path, lambda _old: yaml)


SNIPPETS = {"claude": claude, "codex": codex, "gemini": gemini, "cline": cline, "continue": continue_}


def run_client(settings: Settings, args: argparse.Namespace) -> int:
    url = server_url(settings, args.server)
    keyed = bool(settings.api_keys) or KeyStore(settings.home).any()
    key = args.key or (NEEDS_KEY if keyed else ANY_KEY)
    text, config = SNIPPETS[args.name](url, key)
    if not args.write:
        emit(text)
        return 0
    if config is None:
        raise ProxyError(f"{args.name} is set up from the command line, not a file; run:\n{text}")
    path, render = config
    old = path.read_text(encoding="utf-8") if path.exists() else None
    new = render(old)
    if NEEDS_KEY in new:
        raise ProxyError("this server needs a client key: pass --key (create one with `kiroproxy keys create`)")
    if old is not None:
        backup = path.with_name(f"{path.name}.{time.strftime('%Y%m%d-%H%M%S')}.bak")
        backup.write_text(old, encoding="utf-8")
        emit(f"Kept the previous {path.name} as {backup}")
    write_atomic(path, new.encode("utf-8"), 0o600)
    emit(f"Wrote {path}\n\n{text.split('# then:')[-1].strip()}")
    return 0
