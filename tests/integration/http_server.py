"""A real ``esco-search serve`` process on a loopback port, for the HTTP tests (not a test module).

The process runs under coreutils ``timeout``: it stops by itself even when a test run is killed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
LIFETIME_S = 900


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_env(settings: Any, **service: Any) -> dict[str, str]:
    """ESCO_* for a server reading ``settings``' embedded store with its model in fp32 torch (as the tests'
    encoder fixture), plus ``ESCO_SERVICE_<NAME>`` for each keyword."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESCO_")}
    env.update({
        "ESCO_QDRANT_PATH": str(settings.qdrant_path), "ESCO_EMBEDDED_ENGINE": "edge",
        "ESCO_MODEL": settings.model, "ESCO_COLLECTION": settings.collection, "ESCO_DEVICE": "cpu",
        "ESCO_BACKEND": "torch", "ESCO_PRECISION": "fp32", "ESCO_CACHE_DIR": os.environ.get("ESCO_CACHE_DIR", ""),
        "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    })
    env.update({f"ESCO_SERVICE_{k.upper()}": str(v) for k, v in service.items()})
    return {k: v for k, v in env.items() if v != ""}


class Server:
    """``python -m search.http`` started in ``cwd`` with ``env``; ``url`` once it listens."""

    def __init__(self, env: dict[str, str], cwd: Path, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log
        self._log = open(log, "w", encoding="utf-8")  # noqa: SIM115  (closed in stop())
        self.proc = subprocess.Popen(
            ["timeout", "--foreground", str(LIFETIME_S), sys.executable, "-m", "search.http", "--port", str(self.port),
             "--log-level", "info", "--no-access-log"],
            cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_listening(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}:\n{self.log()[-4000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the server does not listen after {timeout} s:\n{self.log()[-4000:]}")

    def wait_ready(self, timeout: float = 180.0) -> httpx.Response:
        self.wait_listening(timeout)
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}:\n{self.log()[-4000:]}")
            last = httpx.get(self.url + "/readyz", timeout=10)
            if last.status_code == 200:
                return last
            time.sleep(0.3)
        raise RuntimeError(f"not ready after {timeout} s: {last and last.text}\n{self.log()[-4000:]}")

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM (uvicorn finishes open requests, then the lifespan closes the searcher); the exit code."""
        if self.proc.poll() is None:
            # `timeout --foreground` hands SIGTERM to the server alone and exits with its status
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
        return int(self.proc.returncode)


# --- assertions shared by the HTTP tests ------------------------------------------------------------
def no_trace(resp: httpx.Response) -> None:
    for marker in ("Traceback", 'File "', "site-packages", ".py\", line"):
        assert marker not in resp.text, resp.text


def assert_error(resp: httpx.Response, status: int, kind: str, *needles: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["error"] == kind and isinstance(body["detail"], str) and body["detail"], body
    for needle in needles:
        assert needle in body["detail"], (needle, body)
    no_trace(resp)
    return body


def in_flight(url: str) -> float:
    (line,) = [ln for ln in httpx.get(url + "/metrics").text.splitlines()
               if ln.startswith("esco_http_requests_in_flight ")]
    return float(line.split()[1])


@contextlib.contextmanager
def serving(env: dict[str, str], cwd: Path) -> Iterator[Server]:
    """A started service, ready (its log in ``cwd/server.log``), stopped on exit."""
    server = Server(env, cwd, cwd / "server.log")
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
