"""Delivery throughput against the Insider emulator running in its own process.

    .venv/bin/python bench/delivery_bench.py [--rows 200000] [--concurrency 8 32]

Each scenario starts a fresh emulator (``reverse_etl.insider.emulator.serve`` in a
``multiprocessing`` child, on 127.0.0.1) so client and server do not share a
GIL, then times ``InsiderClient.deliver`` over pre-encoded users and prints
users/s and requests/s. Scenarios: clean upsert, upsert with 30% injected
faults (429/500/503/dropped connections), upsert with 20 ms server latency,
and one-user-per-request deletes.
"""

from __future__ import annotations

import argparse
import multiprocessing
import socket
import sys
import time
from collections.abc import Iterator
from typing import Any

import orjson

from reverse_etl.insider.config import InsiderDestinationConfig
from reverse_etl.insider.http import BatchResult, DeliveryStats, Endpoint, InsiderClient

FAULTS_30 = {
    "seed": 3,
    "status_429": 0.1,
    "status_500": 0.05,
    "status_503": 0.05,
    "drop": 0.1,
    "retry_after": 0,
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(port: int, options: dict[str, Any]) -> None:
    from reverse_etl.insider.emulator import serve

    serve("127.0.0.1", port, "acme", "bench-key", **options)


class EmulatorProcess:
    """The emulator in a child process; ``url`` once it accepts connections."""

    def __init__(self, **options: Any) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # The request log keeps bodies; a short log keeps the child's memory flat.
        options.setdefault("request_log_limit", 100)
        self.process = multiprocessing.get_context("spawn").Process(
            target=_serve, args=(self.port, options), daemon=True
        )

    def __enter__(self) -> EmulatorProcess:
        self.process.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the emulator did not start")

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.join(10)


def users(n: int) -> list[str]:
    """Pre-encoded upsert objects of a realistic size (~200 bytes)."""
    return [
        orjson.dumps(
            {
                "identifiers": {"uuid": f"u{i}", "email": f"user{i}@example.com"},
                "attributes": {
                    "name": "Ada",
                    "surname": "Lovelace",
                    "age": 36,
                    "country": "GB",
                    "email_optin": True,
                    "custom": {"tier": "gold", "ltv": i * 1.5},
                },
            }
        ).decode()
        for i in range(n)
    ]


def chunks(items: list[str], size: int = 100_000) -> Iterator[tuple[range, list[str]]]:
    """``(row_ids, items)`` in engine-sized chunks."""
    for start in range(0, len(items), size):
        yield range(start, start + len(items[start : start + size])), items[start : start + size]


def run(
    label: str,
    endpoint: Endpoint,
    items: list[str],
    concurrency: int,
    emulator: dict[str, Any],
    *,
    seed: list[str] | None = None,
    **limits: int,
) -> DeliveryStats:
    """Deliver ``items`` to a fresh emulator and print one line of numbers.

    ``seed`` users are upserted first, untimed (so deletes find someone).
    """
    with EmulatorProcess(**emulator) as emu:
        config = InsiderDestinationConfig.model_validate(
            {
                "partner": "acme",
                "api_key": "bench-key",
                "api_base_url": emu.url,
                "concurrency": concurrency,
                "max_retries": 20,
                "rate_limits": limits,
            }
        )
        client = InsiderClient(config, wait_base=0.01, wait_max=0.2)
        if seed:
            client.deliver(Endpoint.UPSERT, chunks(seed), on_result=lambda _: None)
        settled = 0
        cpu = time.process_time()

        def on_result(result: BatchResult) -> None:
            nonlocal settled
            settled += result.rows

        stats = client.deliver(endpoint, chunks(items), on_result=on_result)
        cpu = time.process_time() - cpu
    assert settled == len(items), (settled, len(items))
    print(
        f"{label:<44} c={concurrency:<3} {len(items):>8,} rows {stats.seconds:7.2f}s "
        f"{stats.rows / stats.seconds:>10,.0f} users/s {stats.requests / stats.seconds:>8,.1f} req/s "
        f"client cpu {cpu / stats.seconds:4.0%} retries={stats.retries:<4} "
        f"acked={stats.rows_acked:,} failed={stats.rows_failed}",
        flush=True,
    )
    return stats


def main(argv: list[str] | None = None) -> None:
    """Run every scenario and print its numbers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--deletes", type=int, default=5_000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8, 32])
    args = parser.parse_args(argv)
    items = users(args.rows)
    print(
        f"python {sys.version.split()[0]}; {args.rows:,} upsert users "
        f"(~{sum(map(len, items)) // args.rows} bytes each), emulator in its own process"
    )
    no_limit = {"rate_limits": {"upsert": None, "user_delete": None}}
    for concurrency in args.concurrency:
        run("upsert, no faults", Endpoint.UPSERT, items, concurrency, no_limit)
        run(
            "upsert, 30% faults (429/500/503/drop)",
            Endpoint.UPSERT,
            items,
            concurrency,
            {**no_limit, "faults": FAULTS_30},
        )
        run(
            "upsert, 20 ms server latency",
            Endpoint.UPSERT,
            items,
            concurrency,
            {**no_limit, "faults": {"latency_ms": 20}},
        )
    deletes = [f'{{"identifiers":{{"uuid":"u{i}"}}}}' for i in range(args.deletes)]
    seed = items[: args.deletes]
    for concurrency in args.concurrency:
        # one request per row; the 10,000/min budget lifted to measure the client itself
        run(
            "user delete (1 per request), limit lifted",
            Endpoint.USER_DELETE,
            deletes,
            concurrency,
            no_limit,
            seed=seed,
            user_delete_per_minute=10_000_000,
        )
    run(
        "user delete at Insider's 10,000/min (sample)",
        Endpoint.USER_DELETE,
        deletes[:400],
        8,
        {},
        seed=seed[:400],
    )


if __name__ == "__main__":
    main()
