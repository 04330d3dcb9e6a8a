"""At the end of the shutdown grace an open stream gets its protocol's in-stream error before the
socket closes, and its flow records what was delivered (text, output tokens, state cancelled)."""
from __future__ import annotations

import json
import signal
import threading

import pytest
import requests

from tests import factories
from tests.fakes.scripts import Script

from .test_server_process import Process

DELIVERED = ["one ", "two ", "three ", "four"]
# path, body, headers, how the protocol's error shows in the stream
STREAMS = {
    "anthropic": ("/v1/messages", factories.anthropic_body(stream=True),
                  {"x-api-key": "k", "anthropic-version": "2023-06-01"},
                  lambda body: "event: error" in body and '"type":"overloaded_error"' in body),
    "openai": ("/v1/chat/completions",
               {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "hi"}]}, {},
               lambda body: 'data: {"error":' in body and '"type":"server_error"' in body),
    "gemini": ("/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
               {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}, {},
               lambda body: 'data: {"error":' in body and '"status":"UNAVAILABLE"' in body),
}


@pytest.mark.parametrize("protocol", sorted(STREAMS))
def test_the_grace_ends_open_streams_with_an_error_and_records_what_was_delivered(tmp_path, fake, protocol):
    path, body, headers, shows_error = STREAMS[protocol]
    home = tmp_path / "home"
    home.mkdir()
    fake.queue(Script().text(*DELIVERED).gate("held").text(" never sent").context_usage(3))
    proc = Process(home, fake.url, extra_env={"KIROPROXY_SHUTDOWN_GRACE_SECONDS": "0.3"})
    try:
        assert proc.admin("POST", "/accounts", json=factories.token_file("acc-S")).status_code == 201
        out: dict = {}

        def read() -> None:
            try:
                out["body"] = requests.post(proc.url + path, json=body, headers=headers, timeout=60).text
            except requests.RequestException as exc:
                out["error"] = exc

        client = threading.Thread(target=read, daemon=True)
        client.start()
        assert fake.wait_gate("held", 10)
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.finish() == 0, "".join(proc.lines)
        client.join(30)
    finally:
        if proc.proc.poll() is None:
            proc.proc.kill()
            proc.finish()
    assert "error" not in out, out  # the body ended properly, it was not cut
    received = out["body"]
    assert all(piece.strip() in received for piece in DELIVERED) and "never sent" not in received
    assert shows_error(received), received
    again = Process(home, fake.url)
    try:
        (flow,) = again.admin("GET", "/flows").json()["flows"]
        assert flow["state"] == "cancelled" and flow["output_tokens"] > 0, flow
        assert flow["error"]["kind"] == "overloaded"
        detail = again.admin("GET", f"/flows/{flow['id']}").json()
        assert detail["response"]["text"] == "".join(DELIVERED)
        assert detail["response"]["stop_reason"] != "end_turn"
    finally:
        assert again.stop() == 0


def test_a_client_cut_by_the_shutdown_reads_the_error_as_json(tmp_path, fake):
    """The Anthropic error event is a whole JSON document (not a cut line)."""
    path, body, headers, _ = STREAMS["anthropic"]
    home = tmp_path / "home"
    home.mkdir()
    fake.queue(Script().text("partial").gate("held").context_usage(3))
    proc = Process(home, fake.url, extra_env={"KIROPROXY_SHUTDOWN_GRACE_SECONDS": "0.2"})
    assert proc.admin("POST", "/accounts", json=factories.token_file("acc-J")).status_code == 201
    with requests.post(proc.url + path, json=body, headers=headers, stream=True, timeout=30) as response:
        lines = response.iter_lines(decode_unicode=True)
        assert any("partial" in line for line in lines)
        proc.proc.send_signal(signal.SIGTERM)
        rest = list(lines)
    assert proc.finish() == 0
    data = [json.loads(line[5:]) for line in rest if line.startswith("data:")]
    assert data[-1]["type"] == "error" and data[-1]["error"]["type"] == "overloaded_error"
