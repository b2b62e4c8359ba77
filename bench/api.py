"""API latency and throughput under 16 concurrent connections, each endpoint against /health in the same run.

Builds a demo-sized lake (60 days at scale 1; ``--root DIR`` keeps it there for the next run, ``--lake`` reuses a
built one with the PII keys of the environment), starts `retreasure serve` in a subprocess on loopback with its
access log on, and drives each read endpoint twice with 16 connections: saturated, with `wrk` (1 thread, 12 s,
each connection sends its next request as soon as the answer comes: the most the server does), then at a held
rate with `hey` (``--rate``, 640 requests/s by default, spread over the connections; 12 s): the latency a client
sees at the target's throughput. Both are compiled clients, so that the client does not eat the server's CPU.
/health is the baseline: the server and the framework, no lake. The first request to each endpoint is timed
apart: it computes the answer from the lake; the rest are answered per lake version. Prints, for both loads,
requests/s, p50 and p99, the ratios to /health and the verdict on issue 13's targets (judged at the held rate:
a saturated closed loop's latency is its queue, connections / throughput), and the server's CPU per request
(steadier than p99 on a shared machine); results go to docs/benchmarks.md with the machine's load.
``--workers N`` serves with N processes.

    make bench-api               # or: .venv/bin/python -m bench.api --root /tmp/bench-api --connections 16
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import socket
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
# Every read endpoint a 60-day lake can answer, as the role that reads it (the forecast needs a year of weeks,
# the recommendations a model run: not built here). The first is the baseline.
ENDPOINTS = (
    ("/health", None),
    ("/v1/fulfillment/orders?status=open", "operations"),
    ("/v1/fulfillment/metrics", "operations"),
    ("/v1/kpis?grain=month", "leadership"),
    ("/v1/kpis?grain=day", "finance"),
    ("/v1/marketing/audiences", "marketing"),
    ("/v1/marketing/audiences/subscribers/members", "marketing"),
    ("/v1/marketing/campaigns", "marketing"),
    ("/v1/finance/reports/revenue?period=2025-02", "finance"),
    ("/v1/realtime/overview", "leadership"),
)
# Issue 13's targets for every read endpoint.
TARGET_P99_MS = 20.0
TARGET_RPS = 500.0
TARGET_OF_HEALTH = 2.0
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


@dataclass
class Load:
    """What a client measured driving one endpoint for a while."""

    requests: int
    errors: int  # answers other than 2xx/3xx, and socket errors
    rps: float
    p50: float  # ms
    p99: float  # ms


@dataclass
class Result:
    path: str
    role: str | None
    first_ms: float
    kilobytes: float  # the answer's body, as sent (uncompressed: neither client asks for an encoding)
    saturated: Load  # wrk: every connection as fast as the answers come
    held: Load  # hey: the requests/s held at --rate
    cpu_us: float  # the server's CPU seconds (user + system, every process of it) per request, in microseconds

    def ratios(self, base: Result) -> tuple[float, float]:
        """The held-rate p99 over /health's at the same rate, and /health's saturated requests/s over this one's:
        both at most 2 meet the target."""
        return self.held.p99 / base.held.p99, base.saturated.rps / self.saturated.rps

    def met(self, base: Result) -> bool:
        """Issue 13's targets: p99 < 20 ms while the server answers >= 500 requests/s (the held rate, which a
        client reaches only if the server keeps up with it), no errors, and within 2x of /health."""
        p99, rps = self.ratios(base)
        return (
            self.held.p99 < TARGET_P99_MS
            and self.held.rps >= TARGET_RPS
            and self.saturated.rps >= TARGET_RPS
            and self.saturated.errors + self.held.errors == 0
            and max(p99, rps) <= TARGET_OF_HEALTH
        )


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


def serve(
    settings: Settings, port: int, log_file: Path, access_log: bool = True, workers: int = 1
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "RETREASURE_LAKE_URI": settings.lake_uri,
        "RETREASURE_PII_HMAC_KEY": settings.pii_hmac_key.get_secret_value(),
        "RETREASURE_PII_VAULT_KEY": settings.pii_vault_key.get_secret_value(),
        # Written as in production, a line per request, into the run's temporary folder rather than the working
        # folder's logs/ (some 80 MB a run); RETREASURE_LOG_FILE=- in the environment sends it to stderr (dropped).
        "RETREASURE_LOG_FILE": os.environ.get("RETREASURE_LOG_FILE", str(log_file)),
    }
    cmd = [sys.executable, "-m", "retreasure", "serve", "--port", str(port)]
    cmd += ["--workers", str(workers)] if workers > 1 else []
    # The access log stays on, as in production, unless a run measures what it costs.
    cmd += [] if access_log else ["--no-access-log"]
    server = subprocess.Popen(cmd, env=env, stderr=subprocess.DEVNULL)
    # Generous: on a busy machine importing the CLI's dependencies alone has taken a minute.
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError("the API did not start")


def server_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) used so far by the server ``pid`` and its live worker processes.

    Load on a shared machine sways latency far more than the CPU a request costs: this is the steadier figure."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for process in (pid, *_children(pid)):
        try:
            fields = Path(f"/proc/{process}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime (fields 14 and 15 of stat)
    return total


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        found += [int(child) for child in task.read_text().split()]
    return found


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def saturate(url: str, key: str | None, connections: int, seconds: float) -> Load:
    """wrk on ``url``, each connection sending its next request as soon as its answer comes."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", url]
    if key:
        cmd[1:1] = ["-H", f"Authorization: Bearer {key}"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    # The latency distribution's lines, not a thread statistic that ends in "50%".
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)$", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)$", out, re.M).group(1))  # type: ignore[union-attr]
    return Load(requests, errors, rps, p50, p99)


def hold(url: str, key: str | None, connections: int, rate: float, seconds: float) -> Load:
    """hey on ``url`` at ``rate`` requests/s in all, spread over ``connections`` (each at most rate / connections
    a second: one that falls behind does not catch up, so a slow server shows as fewer requests/s). Every request's
    time comes back as CSV, so the percentiles are exact ones, not read off a histogram. A request that failed on
    the socket has no row there: it shows as fewer requests/s than asked, not as an error."""
    cmd = ["hey", "-z", f"{seconds:g}s", "-c", str(connections), "-q", f"{rate / connections:g}"]
    # One core for the client, and no gzip (Go's default), to serve the bytes wrk gets.
    cmd += ["-cpus", "1", "-disable-compression", "-o", "csv"]
    if key:
        cmd += ["-H", f"Authorization: Bearer {key}"]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    # response-time (s), DNS+dialup, DNS, request-write, response-delay, response-read, status-code, offset (s)
    rows = [line.split(",") for line in out.splitlines()[1:] if line]
    times = sorted(float(row[0]) * 1000 for row in rows)
    errors = sum(1 for row in rows if not 200 <= int(row[6]) < 400)
    span = max((float(row[7]) + float(row[0]) for row in rows), default=seconds)
    return Load(len(rows), errors, len(rows) / span, _percentile(times, 50), _percentile(times, 99))


def _percentile(ordered: list[float], percent: float) -> float:
    """The nearest-rank percentile of ``ordered`` (as wrk reports its own)."""
    if not ordered:
        return float("nan")
    rank = math.ceil(len(ordered) * percent / 100)
    return ordered[min(len(ordered), max(rank, 1)) - 1]


def load() -> str:
    """The machine's load averages (1, 5, 15 min), as `uptime` prints them."""
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def lake_at(args: argparse.Namespace, tmp: Path) -> Settings:
    """The lake to serve: given, kept under --root from an earlier run (with its PII keys), or built now."""
    if args.lake:
        return Settings(lake_uri=str(args.lake))
    root = args.root or tmp
    saved = root / "bench-api.json"
    if saved.exists():
        found = json.loads(saved.read_text())
        return Settings(
            _env_file=None, lake_uri=found["lake"], pii_hmac_key=found["hmac"], pii_vault_key=found["vault"]
        )  # type: ignore[call-arg]
    settings = build_lake(root, args.days, args.scale)
    secrets = {"hmac": settings.pii_hmac_key.get_secret_value(), "vault": settings.pii_vault_key.get_secret_value()}
    saved.write_text(json.dumps({"lake": settings.lake_uri, **secrets}))
    return settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", type=Path, help="a built lake to reuse (PII keys from the environment)")
    parser.add_argument("--root", type=Path, help="build the lake here, or reuse the one an earlier run built here")
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=12.0, help="per endpoint and load (saturated, held)")
    parser.add_argument("--rate", type=float, default=640.0, help="the held load's requests/s, all connections")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    parser.add_argument("--only", action="append", help="measure only endpoints containing this (repeatable)")
    parser.add_argument("--no-access-log", action="store_true", help="serve without the access log (its cost)")
    parser.add_argument("--workers", type=int, default=1, help="server processes (`serve --workers`)")
    args = parser.parse_args()
    endpoints = [e for e in ENDPOINTS if e[0] == "/health" or not args.only or any(o in e[0] for o in args.only)]
    for client in ("wrk", "hey"):
        if shutil.which(client) is None:
            sys.exit(
                f"bench-api drives the server with wrk and hey: install {client} (Debian: apt-get install {client})"
            )
    with tempfile.TemporaryDirectory() as tmp:
        settings = lake_at(args, Path(tmp))
        lake = Lake.from_settings(settings)
        roles = sorted({role for _, role in endpoints if role})
        keys = {role: auth.create_key(lake, role, "bench") for role in roles}
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        log_file = Path(tmp) / "serve.log"
        server = serve(settings, port, log_file, access_log=not args.no_access_log, workers=args.workers)
        load_before = load()
        results = []
        try:
            for path, role in endpoints:
                url = f"http://127.0.0.1:{port}{path}"
                headers = {"Authorization": f"Bearer {keys[role]}"} if role else {}
                started = time.perf_counter()
                first = httpx.get(url, headers=headers, timeout=120)
                first_ms = (time.perf_counter() - started) * 1000
                first.raise_for_status()
                for _ in range(4 * (args.workers - 1)):  # new connections: likely every worker computes it now
                    httpx.get(url, headers=headers, timeout=120).raise_for_status()
                key = keys.get(role or "")
                cpu_before = server_cpu_seconds(server.pid)
                saturated = saturate(url, key, args.connections, args.seconds)
                cpu_us = (server_cpu_seconds(server.pid) - cpu_before) / max(saturated.requests, 1) * 1e6
                held = hold(url, key, args.connections, args.rate, args.seconds)
                results.append(Result(path, role, first_ms, len(first.content) / 1024, saturated, held, cpu_us))
        finally:
            server.terminate()
            server.wait(10)
            for key in keys.values():
                auth.revoke_key(lake, auth.key_id_of(key) or "")
        load_after = load()
    base = results[0]
    what = "the given lake" if args.lake else f"a {args.days}-day lake at scale {args.scale:g}"
    table = [
        MARK,
        f"### API, {what}, {args.connections} connections, per endpoint: saturated (wrk, 1 thread, {args.seconds:g} s) "
        f"and held at {args.rate:g} requests/s (hey, {args.seconds:g} s) ({date.today()}, `make bench-api`"
        f"{', access log off' if args.no_access_log else ''}{f', {args.workers} workers' if args.workers > 1 else ''})",
        "",
        f"Load average (1, 5, 15 min) before: {load_before}; after: {load_after} (2 cores, shared).",
        f"Targets, judged at the held rate: p99 < {TARGET_P99_MS:g} ms at >= {TARGET_RPS:g} requests/s, p99 within "
        f"{TARGET_OF_HEALTH:g}x of /health's at the same rate and saturated requests/s within {TARGET_OF_HEALTH:g}x "
        "of /health's, no errors.",
        "",
        "| endpoint | role | first ms | body KB | saturated req/s | p50 ms | p99 ms | held req/s | p50 ms | p99 ms "
        "| held p99 / health | health req/s / this | errors | server CPU us/request | targets |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        p99_ratio, rps_ratio = r.ratios(base)
        verdict = "baseline" if r is base else ("met" if r.met(base) else "**not met**")
        sat, held = r.saturated, r.held
        table.append(
            f"| `{r.path}` | {r.role or '-'} | {r.first_ms:,.1f} | {r.kilobytes:,.1f} | {sat.rps:,.0f} | "
            f"{sat.p50:,.2f} | {sat.p99:,.2f} | {held.rps:,.0f} | {held.p50:,.2f} | {held.p99:,.2f} | "
            f"{p99_ratio:.2f} | {rps_ratio:.2f} | {sat.errors + held.errors} | {r.cpu_us:,.0f} | {verdict} |"
        )
    table.append(MARK)
    print("\n".join(table))
    if not args.no_write:
        write_section(MARK, table)


if __name__ == "__main__":
    main()
