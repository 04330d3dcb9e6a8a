"""The processes of the streaming benchmark: the fake Kiro and the proxy, each in its own interpreter.

    fake = FakeProcess(chunks=200, interval=0.002, new_connection_delay=0.0)   # fake.url
    proxy = ProxyProcess(ROOT, fake.url)       # any checkout's kiroproxy.py; proxy.startup, proxy.url
    floor = ProxyProcess(ROOT, fake.url, script=FLOOR_APP)   # Flask + waitress alone, measured alike
    rss_mb(proxy.pid); cpu_seconds(proxy.pid); with RssSampler(proxy.pid) as peak: ...; peak.mb

Run as a script, this module is the fake's process: `python stream_processes.py fake CHUNKS INTERVAL
DELAY` prints the fake's URL and serves until its stdin closes.
"""
from __future__ import annotations

import http.client
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import List, Optional

ROOT = Path(__file__).resolve().parents[1]
FLOOR_APP = Path(__file__).resolve().parent / "floor_app.py"
FLOOR_STREAM_APP = Path(__file__).resolve().parent / "floor_stream_app.py"
ADMIN = "bench-admin-key"
SHORT_MARK = "bench-short"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def chunk_text(number: int) -> str:
    return f"chunk{number:04d} "


class FakeProcess:
    """The fake Kiro (tests/fakes/kiro.py) in a child process: short requests (the body holds
    SHORT_MARK) get "ok", every other chat request `chunks` text frames `interval` seconds apart."""

    def __init__(self, chunks: int, interval: float, new_connection_delay: float = 0.0) -> None:
        args = [sys.executable, __file__, "fake", str(chunks), str(interval), str(new_connection_delay)]
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("http"):
            raise RuntimeError("the fake did not start")

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


def serve_fake(chunks: int, interval: float, delay: float) -> None:
    sys.path.insert(0, str(ROOT))
    from tests.fakes.kiro import FakeKiro
    from tests.fakes.scripts import text_answer

    with FakeKiro() as fake:
        fake.new_connection_delay = delay
        fake.route(lambda recorded: SHORT_MARK.encode() in recorded.body, text_answer("ok"))
        stream = text_answer(*[chunk_text(i) for i in range(chunks)]).paced(interval)
        fake.route(lambda recorded: True, stream)
        print(fake.url, flush=True)
        sys.stdin.read()  # until the parent closes our stdin


class ProxyProcess:
    """`python <root>/kiroproxy.py` on a free port with a fresh data directory, pointed at a fake.

    `startup` is the time from launching the process to the first answered GET /v1/models."""

    def __init__(self, root: Path, fake_url: str, extra_args: Optional[List[str]] = None,
                 script: Optional[Path] = None) -> None:
        self.home = tempfile.mkdtemp(prefix="kiroproxy-bench-")
        self.port = free_port()
        env = dict(os.environ, HOME=self.home, KIROPROXY_ADMIN_KEY=ADMIN, KIROPROXY_KIRO_API_URL=fake_url,
                   KIROPROXY_KIRO_AUTH_URL=fake_url, KIROPROXY_AWS_OIDC_URL=fake_url,
                   KIROPROXY_LOG_LEVEL="WARNING")
        env.pop("KIROPROXY_HOME", None)
        env.pop("PYTHONPATH", None)  # the checkout's own package, found next to kiroproxy.py
        # Bytecode caches as an installed package has them: else every start compiles our modules
        # (~120 ms here) and the start-up figure measures the compiler.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        started = time.perf_counter()
        self.proc = subprocess.Popen([sys.executable, str(script or root / "kiroproxy.py"), "--port", str(self.port),
                                      *(extra_args or [])], cwd=str(root), env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.pid = self.proc.pid
        self.host = "127.0.0.1"
        self.url = f"http://{self.host}:{self.port}"
        self.startup = self._wait_ready(started)

    def _wait_ready(self, started: float) -> float:
        deadline = started + 30
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("the proxy exited during start-up")
            if self._status("GET", "/v1/models") == 200:
                return time.perf_counter() - started
            time.sleep(0.002)
        raise RuntimeError("the proxy did not start")

    def _status(self, method: str, path: str, body: Optional[bytes] = None, headers: Optional[dict] = None) -> int:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            response.read()
            return response.status
        except OSError:
            return 0
        finally:
            conn.close()

    def add_account(self) -> None:
        sys.path.insert(0, str(ROOT))
        import json

        from tests import factories

        body = json.dumps(factories.token_file("bench-acc")).encode()
        status = self._status("POST", "/api/accounts", body, {"Authorization": f"Bearer {ADMIN}",
                                                               "Content-Type": "application/json"})
        if status not in (200, 201):
            raise RuntimeError(f"adding the bench account answered {status}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.home, ignore_errors=True)


class RssSampler:
    """Peak resident memory (MB) of a process while a block runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.mb = max(self.mb, rss_mb(self.pid))
            self._stop.wait(0.02)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.mb = max(self.mb, rss_mb(self.pid))


if __name__ == "__main__" and sys.argv[1:2] == ["fake"]:
    serve_fake(int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]))
