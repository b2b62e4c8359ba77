"""API latency and throughput under concurrent clients, against /health measured in the same run.

Builds a demo-sized lake (or reuses one given with --lake), starts `retreasure serve` in a subprocess on
loopback, then drives each endpoint with N concurrent clients (asyncio + httpx) for a fixed time: /health (the
baseline: the framework, the server and the client, no lake), the open fulfillment queue as an operations key
(with the ship-to addresses revealed from the vault) and the monthly KPIs as a leadership key. Prints p50/p99
latency and requests/s, and the ratios against /health. Results go to docs/benchmarks.md.

    make bench-api               # or: .venv/bin/python -m bench.api --lake /tmp/bench-lake --clients 32
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import httpx

from bench.ingest import bench_settings, write_section
from retreasure.bronze.ingest import run_ingest
from retreasure.engine.build import build as build_models
from retreasure.lake import Lake
from retreasure.serving import auth
from retreasure.settings import Settings
from retreasure_sim.config import SimConfig
from retreasure_sim.stage import Credentials, build, running_servers

MARK = "<!-- bench/api -->"
ENDPOINTS = (
    ("/health", None),
    ("/v1/fulfillment/orders?status=open", "operations"),
    ("/v1/kpis?grain=month", "leadership"),
)


@dataclass
class Result:
    path: str
    requests: int
    errors: int
    seconds: float
    latencies: list[float]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def percentile(self, q: int) -> float:
        return statistics.quantiles(self.latencies, n=100)[q - 1] * 1000


def build_lake(root: Path, days: int, scale: float) -> Settings:
    """Simulate, serve, ingest and build a lake like `retreasure demo` does, faults off."""
    settings = bench_settings(root)
    config = SimConfig(seed=7, start=date(2025, 1, 1), days=days, scale=scale)
    started = time.perf_counter()
    truth = build(config, root / "sim", root / "landing")
    with running_servers(truth, config, Credentials.fresh(), settings) as (served, _):
        run_ingest(served, Lake.from_settings(served))
    build_models(Lake.from_settings(settings))
    print(f"built a {days}-day lake ({len(truth['orders']):,} orders) in {time.perf_counter() - started:.0f}s")
    return settings


def serve(settings: Settings, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "RETREASURE_LAKE_URI": settings.lake_uri,
        "RETREASURE_PII_HMAC_KEY": settings.pii_hmac_key.get_secret_value(),
        "RETREASURE_PII_VAULT_KEY": settings.pii_vault_key.get_secret_value(),
    }
    cmd = [sys.executable, "-m", "retreasure", "serve", "--port", str(port)]
    # The access log stays on, as in production; its lines go nowhere.
    server = subprocess.Popen(cmd, env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError("the API did not start")


async def drive(url: str, key: str | None, clients: int, seconds: float) -> Result:
    """``clients`` loops each sending one request after another for ``seconds``."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(headers=headers, limits=limits, timeout=120) as client:
        await client.get(url)  # warm: the first request opens the lake's tables
        stop = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < stop:
                started = time.perf_counter()
                response = await client.get(url)
                latencies.append(time.perf_counter() - started)
                errors += response.status_code != 200

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return Result(url, len(latencies), errors, elapsed, latencies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", type=Path, help="a built lake to reuse (PII keys from the environment)")
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        # A given lake takes its PII keys from the environment (.env), as `retreasure serve` will.
        settings = Settings(lake_uri=str(args.lake)) if args.lake else build_lake(Path(tmp), args.days, args.scale)
        lake = Lake.from_settings(settings)
        keys = {role: auth.create_key(lake, role, "bench") for role in ("operations", "leadership")}
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = serve(settings, port)
        try:
            results = [
                asyncio.run(drive(f"http://127.0.0.1:{port}{path}", keys.get(role or ""), args.clients, args.seconds))
                for path, role in ENDPOINTS
            ]
        finally:
            server.terminate()
            server.wait(10)
            for key in keys.values():
                auth.revoke_key(lake, auth.key_id_of(key) or "")
    base = results[0]
    what = "the given lake" if args.lake else f"a {args.days}-day lake at scale {args.scale:g}"
    table = [
        MARK,
        f"### API, {what}, {args.clients} concurrent clients x {args.seconds:g} s per endpoint "
        f"({date.today()}, `make bench-api`)",
        "",
        "| endpoint | requests | errors | requests/s | p50 ms | p99 ms | p50 / health | requests/s / health |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        path = r.path.split(str(port), 1)[1]
        table.append(
            f"| `{path}` | {r.requests:,} | {r.errors} | {r.rps:,.1f} | {r.percentile(50):,.1f} | "
            f"{r.percentile(99):,.1f} | {r.percentile(50) / base.percentile(50):.1f} | {r.rps / base.rps:.3f} |"
        )
    table.append(MARK)
    print("\n".join(table))
    if not args.no_write:
        write_section(MARK, table)


if __name__ == "__main__":
    main()
