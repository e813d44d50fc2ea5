"""Throughput of the Insider emulator's upsert endpoint.

Runs the emulator in a separate process (``python -c`` calling ``serve``, request
log disabled so memory stays flat), then sends pre-encoded 1,000-user upsert
bodies from a few concurrent httpx clients and prints users/s and requests/s.

    .venv/bin/python bench/emulator_bench.py [--users 200000] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import time

import httpx
import orjson

HEADERS = {"X-PARTNER-NAME": "acme", "X-REQUEST-TOKEN": "test-key",
           "Content-Type": "application/json"}
SERVER = ("from reverse_etl.insider.emulator import serve; "
          "serve(port=0, partner='acme', api_key='test-key', request_log_limit=0)")


def make_bodies(users: int, batch: int) -> list[bytes]:
    """Pre-encoded upsert bodies of ``batch`` distinct, valid users each."""
    bodies = []
    for start in range(0, users, batch):
        chunk = [{"identifiers": {"uuid": f"user-{i}", "email": f"user{i}@example.com"},
                  "attributes": {"name": f"Name {i}", "age": 20 + i % 50, "email_optin": True,
                                 "custom": {"tier": "gold" if i % 3 else "silver",
                                            "ltv": i * 1.5, "tags": ["a", "b"]}}}
                 for i in range(start, min(start + batch, users))]
        bodies.append(orjson.dumps({"users": chunk}))
    return bodies


async def send_all(url: str, bodies: list[bytes], concurrency: int) -> int:
    """Send every body with ``concurrency`` clients; the number of accepted users."""
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for b in bodies:
        queue.put_nowait(b)
    accepted = 0

    async def worker() -> None:
        nonlocal accepted
        async with httpx.AsyncClient(base_url=url, headers=HEADERS, timeout=60) as client:
            while not queue.empty():
                body = queue.get_nowait()
                r = await client.post("/api/user/v1/upsert", content=body)
                r.raise_for_status()
                data = orjson.loads(r.content)["data"]
                if data["fail"]:
                    raise RuntimeError(f"rows rejected: {data['fail']}")
                accepted += data["successful"]["count"]

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return accepted


def server_cpu(pid: int) -> float:
    """User+system CPU seconds used so far by process ``pid`` (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    """Start the emulator process, run the benchmark, print the numbers."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()

    bodies = make_bodies(args.users, args.batch)
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        banner = server.stdout.readline()
        match = re.search(r"listening on (http://\S+)", banner)
        if match is None:
            raise SystemExit(f"emulator did not start: {banner!r}")
        url = match.group(1)
        # Warm up: one small request (connection, imports, first allocations).
        httpx.post(url + "/api/user/v1/upsert", headers=HEADERS, content=orjson.dumps(
            {"users": [{"identifiers": {"uuid": "warm"}, "attributes": {"name": "w"}}]}))
        cpu_before = server_cpu(server.pid)
        start = time.perf_counter()
        accepted = asyncio.run(send_all(url, bodies, args.concurrency))
        elapsed = time.perf_counter() - start
        cpu = server_cpu(server.pid) - cpu_before
        counts = httpx.get(url + "/_emulator/counts").json()
    finally:
        server.terminate()
        server.wait(timeout=10)
    if accepted != args.users or counts["users"] != args.users + 1:
        raise SystemExit(f"expected {args.users} users, accepted {accepted}, "
                         f"emulator holds {counts['users'] - 1}")
    print(f"emulator upsert: {args.users:,} users in {len(bodies):,} requests of "
          f"{args.batch:,}, {args.concurrency} clients: {elapsed:.2f} s")
    print(f"  {args.users / elapsed:,.0f} users/s, {len(bodies) / elapsed:,.1f} requests/s, "
          f"{sum(map(len, bodies)) / elapsed / 1e6:.1f} MB/s")
    # The client shares the machine's cores; the server's own CPU time says what the
    # emulator alone could sustain on one core.
    print(f"  emulator process CPU: {cpu:.2f} s -> {args.users / cpu:,.0f} users per "
          f"CPU-second; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
