"""Start-up stays light: the server started as `kiroproxy serve` has answered its first /v1/models
without loading what only later requests need (each of these costs resident memory and start-up
time). Structural, not timed: a child process runs the real command and lists what it imported."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

# Loaded on first use: the upstream HTTP stack, the export/import document models, the metrics
# library, the tokenizer, the kiro-cli database reader, and the commands the server does not run.
LATER = ("requests", "urllib3", "pydantic", "pydantic_core", "prometheus_client", "tiktoken",
         "sqlite3", "kiroproxy.accounts.transfer", "kiroproxy.kiro.warmadapter", "kiroproxy.cli.doctor")

CHILD = r"""
import http.client, json, os, signal, sys, threading, time
from pathlib import Path

def probe(home):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            port = json.loads((home / "server.json").read_text())["port"]
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", "/v1/models")
            status = conn.getresponse().status
            break
        except (OSError, ValueError, KeyError):
            time.sleep(0.01)
    else:
        status = 0
    print(json.dumps({"status": status, "modules": sorted(sys.modules)}), flush=True)
    os.kill(os.getpid(), signal.SIGTERM)

home = Path(sys.argv[1])
threading.Thread(target=probe, args=(home,), daemon=True).start()
from kiroproxy.cli import main
sys.exit(main(["serve", "--port", "0", "--data-dir", str(home)]))
"""


def modules_after_first_models_call(tmp_path: Path) -> set:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIROPROXY_")}
    env.update(HOME=str(tmp_path), KIROPROXY_LOG_LEVEL="WARNING")
    home = tmp_path / "data"
    out = subprocess.run([sys.executable, "-c", CHILD, str(home)], capture_output=True, text=True, env=env,
                         timeout=120)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    assert lines, (out.stdout, out.stderr)
    report = json.loads(lines[-1])
    assert report["status"] == 200, out.stderr
    return set(report["modules"])


def test_serve_answers_its_first_models_call_without_loading_what_later_requests_need(tmp_path):
    loaded = modules_after_first_models_call(tmp_path)
    assert "kiroproxy.app" in loaded and "waitress" in loaded  # the probe saw the real server
    assert sorted(name for name in LATER if name in loaded) == []


def test_each_command_is_found_in_the_group_the_table_names():
    from kiroproxy import cli

    def names(root) -> list:
        return [name for action in root._subparsers._group_actions for name in action.choices]

    assert names(cli.parser()) == list(cli.COMMANDS)
    for command in cli.COMMANDS:
        assert command in names(cli.parser(command))


def test_the_command_is_read_as_the_full_parser_reads_it():
    from kiroproxy.cli import command_in

    assert command_in([]) == command_in(["--port", "9000"]) == "serve"
    assert command_in(["--data-dir", "logs", "status", "--json"]) == "status"  # a flag's value is not a command
    assert command_in(["--data-dir=/x", "flows", "timeout"]) == "flows"
    assert command_in(["logs", "-h"]) is None and command_in(["--port", "x"]) is None
