"""Benchmark the producer webhook: signed POST /api/v1/signals against the real server.

The server runs in a separate process (``--serve`` mode of this file: the app, the event relay,
a fresh migrated database, one producer with the rate limit lifted), so client and server do not
share an event loop. Two phases, each ``--seconds`` long:

- ``fixed``: an open-loop schedule at ``--rate`` requests a second (latency is measured from the
  scheduled send time, so a stalled server cannot hide its queueing);
- ``max``: ``--concurrency`` workers, each sending its next request when the last is answered.

Every request is a distinct, valid, signed signal that the server commits before it answers.
Prints one JSON document. Usage::

    .venv/bin/python bench/ingest.py                 # SQLite in a temp dir
    .venv/bin/python bench/ingest.py --pg            # PostgreSQL on 127.0.0.1:5432 (fresh database)
    .venv/bin/python bench/ingest.py --profile out.html   # pyinstrument profile of the server
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG_ADMIN = os.environ.get("TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


# --- server process ----------------------------------------------------------------------------


async def _serve(database_url: str, port: int, relay_on: bool) -> None:
    from decimal import Decimal

    from engine.api import build_http_app, start_http_server
    from engine.observability.logs import setup_logging
    from engine.settings import Settings
    from engine.store.migrate import upgrade_async
    from tradebot.app import build_api_context, build_services

    setup_logging("WARNING")

    secret_key = "bench-" + "k" * 40
    settings = Settings(_env_file=None, database_url=database_url, secret_key=secret_key)  # type: ignore[call-arg]
    await upgrade_async(settings.database_url)
    services = build_services(settings)
    relay = services.relay
    ctx = build_api_context(services)
    producer = await ctx.producers.add(
        f"bench-{uuid.uuid4().hex[:8]}", rate_per_second=Decimal(1_000_000), burst=1_000_000
    )
    from engine.api.connections import ConnectionLimits

    # every load-generating connection comes from one address: lift the per-client cap (50)
    limits = ConnectionLimits(max_connections_per_client=100_000)
    runner = await start_http_server(build_http_app(ctx), "127.0.0.1", port, limits=limits)
    if os.environ.get("BENCH_GC_FREEZE"):
        import gc

        gc.collect()
        gc.freeze()
    if relay_on:
        relay.start()
    actual = runner.addresses[0][1]
    print(json.dumps({"port": actual, "producer_id": producer.id, "secret": producer.secret}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()
    if relay_on:
        await relay.stop()
    await runner.cleanup()
    await services.close()
    await services.db.dispose()


def serve_main(args: argparse.Namespace) -> None:
    coro = _serve(args.database_url, args.port, not args.no_relay)
    if args.profile:
        from pyinstrument import Profiler

        profiler = Profiler(async_mode="disabled")
        profiler.start()
        try:
            asyncio.run(coro)
        finally:
            profiler.stop()
            Path(args.profile).write_text(profiler.output_html())
            print(profiler.output_text(unicode=False, color=False, show_all=False), file=sys.stderr)
    else:
        asyncio.run(coro)


# --- client ------------------------------------------------------------------------------------
# A minimal keep-alive HTTP/1.1 client on asyncio streams, and requests signed before each phase
# starts, so that the client spends as little CPU as possible on the shared 2-core machine and
# the numbers describe the server.


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def exchange(self, request: bytes) -> int:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        if length:
            await self.reader.readexactly(length)
        return status


class Client:
    def __init__(self, port: int, producer_id: str, secret: str) -> None:
        self.port = port
        self.producer_id = producer_id
        self.secret = secret
        self.counter = itertools.count()
        self.errors: dict[str, int] = {}
        self.idle: list[Connection] = []

    def signed_request(self) -> bytes:
        from engine.ingest.signing import signature_header

        n = next(self.counter)
        body = json.dumps(
            {
                "id": f"b-{n}-{uuid.uuid4().hex[:8]}",
                "instrument": "EURUSD",
                "side": "buy",
                "order_type": "limit",
                "entry": "1.08450",
                "sl": "1.08150",
                "tp": "1.09050",
                "strategy": "bench",
            }
        ).encode()
        head = (
            "POST /api/v1/signals HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"X-Producer-Id: {self.producer_id}\r\nX-Signature: {signature_header(self.secret, body)}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body

    def requests(self, n: int) -> list[bytes]:
        return [self.signed_request() for _ in range(n)]

    async def send(self, request: bytes, expect: int = 201) -> bool:
        conn = (
            self.idle.pop()
            if self.idle
            else Connection(*await asyncio.open_connection("127.0.0.1", self.port))
        )
        try:
            status = await conn.exchange(request)
        except Exception as exc:
            name = type(exc).__name__
            self.errors[name] = self.errors.get(name, 0) + 1
            conn.writer.close()
            return False
        self.idle.append(conn)
        if status != expect:
            self.errors[str(status)] = self.errors.get(str(status), 0) + 1
        return status == expect

    async def close(self) -> None:
        for conn in self.idle:
            conn.writer.close()
        self.idle.clear()


def _summary(latencies: list[float], ok: int, total: int, seconds: float) -> dict[str, Any]:
    lat = sorted(latencies)

    def pct(p: float) -> float | None:
        if not lat:
            return None
        return round(lat[min(len(lat) - 1, int(p / 100 * len(lat)))] * 1000, 3)

    return {
        "requests": total,
        "ok": ok,
        "seconds": round(seconds, 3),
        "throughput_rps": round(ok / seconds, 1) if seconds else None,
        "latency_ms": {
            "p50": pct(50),
            "p90": pct(90),
            "p99": pct(99),
            "max": round(lat[-1] * 1000, 3) if lat else None,
            "mean": round(statistics.fmean(lat) * 1000, 3) if lat else None,
        },
    }


async def fixed_rate(
    client: Client, rate: float, seconds: float, requests: list[bytes], expect: int = 201
) -> dict[str, Any]:
    """Open loop: request i is due at start + i/rate; latency counts from that moment."""
    for request in requests[:20]:  # warm up connections
        await client.send(request, expect)
    requests = requests[20:]
    latencies: list[float] = []
    results: list[bool] = []

    async def one(request: bytes, scheduled: float) -> None:
        ok = await client.send(request, expect)
        latencies.append(time.perf_counter() - scheduled)
        results.append(ok)

    total = min(len(requests), int(rate * seconds))
    tasks: list[asyncio.Task[None]] = []
    start = time.perf_counter()
    for i in range(total):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(requests[i], scheduled)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    out = _summary(latencies, sum(results), total, elapsed)
    out["target_rps"] = rate
    return out


async def max_speed(
    client: Client, concurrency: int, seconds: float, requests: list[bytes]
) -> dict[str, Any]:
    """Closed loop: ``concurrency`` workers, each sending its next request when answered."""
    latencies: list[float] = []
    results: list[bool] = []
    feed = iter(requests)
    start = time.perf_counter()
    deadline = start + seconds

    async def worker() -> None:
        for request in feed:
            if time.perf_counter() >= deadline:
                return
            t0 = time.perf_counter()
            ok = await client.send(request)
            latencies.append(time.perf_counter() - t0)
            results.append(ok)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    out = _summary(latencies, sum(results), len(results), elapsed)
    out["concurrency"] = concurrency
    return out


async def _pg_admin(statement: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


def _start_server(
    database_url: str, args: argparse.Namespace
) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    cmd = [sys.executable, __file__, "--serve", "--database-url", database_url]
    if args.no_relay:
        cmd.append("--no-relay")
    if args.profile:
        cmd += ["--profile", args.profile]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise SystemExit("the bench server did not start")
    return proc, json.loads(line)


async def server_histogram(client: Client) -> dict[float, float]:
    """The server's own ``tradebot_signal_ingest_seconds`` buckets (cumulative counts)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    text = (await reader.read()).decode()
    writer.close()
    buckets: dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith("tradebot_signal_ingest_seconds_bucket{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[float(le)] = float(line.rsplit(" ", 1)[1])
    return buckets


def histogram_view(before: dict[float, float], after: dict[float, float]) -> dict[str, Any]:
    """What share of this phase's requests the server answered within each bucket bound."""
    delta = {le: after.get(le, 0.0) - before.get(le, 0.0) for le in after}
    total = delta.get(float("inf"), 0.0)
    if not total:
        return {}
    shares = {f"<= {le * 1000:g} ms": round(n / total, 4) for le, n in sorted(delta.items()) if le <= 0.0101}
    return {"requests": int(total), "share_answered_within": shares}


async def _client_main(info: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    client = Client(info["port"], info["producer_id"], info["secret"])
    phases: dict[str, Any] = {}
    if args.phase in ("all", "fixed"):
        # the floor of this machine: the same schedule against GET /healthz
        ping = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        count = int(args.rate * args.seconds) + 20
        phases["baseline_healthz"] = await fixed_rate(
            client, args.rate, args.seconds, [ping] * count, expect=200
        )
        before = await server_histogram(client)
        phases["fixed"] = await fixed_rate(client, args.rate, args.seconds, client.requests(count))
        phases["fixed"]["server_side"] = histogram_view(before, await server_histogram(client))
    if args.phase in ("all", "max"):
        requests = client.requests(int(args.seconds * args.max_rps_hint))
        phases["max"] = await max_speed(client, args.concurrency, args.seconds, requests)
    await client.close()
    phases["errors"] = client.errors
    return phases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--pg", action="store_true", help="use PostgreSQL (a fresh database) instead of SQLite"
    )
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--phase", choices=["all", "fixed", "max"], default="all")
    parser.add_argument(
        "--max-rps-hint", type=float, default=4000, help="requests pre-signed per second of max"
    )
    parser.add_argument("--no-relay", action="store_true", help="do not run the event relay in the server")
    parser.add_argument("--profile", default=None, help="write a pyinstrument HTML profile of the server")
    args = parser.parse_args()
    if args.serve:
        serve_main(args)
        return

    pg_name = None
    with tempfile.TemporaryDirectory() as tmp:
        if args.database_url:
            url = args.database_url
        elif args.pg:
            pg_name = f"tradebot_bench_{uuid.uuid4().hex[:8]}"
            asyncio.run(_pg_admin(f'CREATE DATABASE "{pg_name}"'))
            url = PG_ADMIN.rsplit("/", 1)[0] + f"/{pg_name}"
        else:
            url = f"sqlite+aiosqlite:///{tmp}/bench.db"
        proc, info = _start_server(url, args)
        try:
            phases = asyncio.run(_client_main(info, args))
        finally:
            proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(30)
            if proc.poll() is None:
                proc.kill()
            if pg_name:
                asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)'))
    report = {
        "benchmark": "ingest",
        "database": "postgresql" if (args.pg or url.startswith("postgres")) else "sqlite",
        "relay": not args.no_relay,
        "cpus": os.cpu_count(),
        **phases,
        "targets": {"fixed_p99_ms_below": 5.0, "max_rps_at_least": 1500},
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
