"""The delivery client's own cost: 1M encoded users through ``InsiderClient.deliver``.

Insider is replaced by ``bench/standin.py`` (acknowledges instantly, in its own
process). The users are the sync bench's (``bench/sync_bench.py``: ~230-byte
upsert objects with a ``tags`` array and ``"not_append":true``), written by
DuckDB into a ``changes`` table as the engine's encode stage does, then read
back by the engine's own ``run/delivery.py:_chunks`` in 20k-row Arrow chunks
and handed to the client, with a journal writer and an ``on_result`` like
``run/delivery.py``'s (an fsynced line per request, acked ranges kept).

Printed: users/s over the delivery, and the CPU seconds of this (the client)
process during it (``resource.getrusage``: user + system), per 1M users.
``--code DIR`` imports ``reverse_etl`` from another checkout (e.g. the parent
commit, extracted with ``git archive``) so before/after run side by side::

    .venv/bin/python bench/client_bench.py --rows 1000000
    git archive HEAD~1 | tar -x -C /tmp/base
    .venv/bin/python bench/client_bench.py --rows 1000000 --code /tmp/base
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent

PAYLOAD_SQL = """
'{"identifiers":{"uuid":"c' || i || '","email":"user' || i || '@example.com"},"attributes":{'
|| '"name":"Name' || (i % 1000) || '","city":"City' || (i % 97) || '","country":"'
|| (['GB','TR','US','DE'])[i % 4 + 1] || '","email_optin":' || CASE WHEN i % 2 = 0 THEN 'true' ELSE 'false' END
|| ',"custom":{"ltv":' || round(i * 0.37, 2)::DOUBLE || ',"tier":"' || (['gold','silver','bronze'])[i % 3 + 1]
|| '","tags":["t' || (i % 5) || '","t' || (i % 7) || '"],"signed_up_at":"'
|| strftime(TIMESTAMP '2025-01-01' + INTERVAL (i % 100000) MINUTE, '%Y-%m-%dT%H:%M:%SZ')
|| '"}},"not_append":true}'
"""


def cpu_seconds() -> float:
    """User + system CPU of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(rows: int, url: str, concurrency: int, chunk: int) -> dict[str, Any]:
    """One delivery of ``rows`` users: wall seconds, client CPU seconds, counts."""
    import duckdb

    import reverse_etl
    from reverse_etl.insider.config import InsiderDestinationConfig
    from reverse_etl.insider.http import BatchResult, InsiderClient
    from reverse_etl.insider.http.endpoints import Endpoint
    from reverse_etl.run.delivery import _chunks
    from reverse_etl.state import Journal
    from reverse_etl.state.journal import to_ranges

    con = duckdb.connect()
    con.execute(f"CREATE TABLE changes AS SELECT i AS row_id, 'upsert' AS op, {PAYLOAD_SQL} AS payload "
                f"FROM range({rows}) t(i)")
    sizes = con.execute("SELECT avg(strlen(payload)), sum(strlen(payload)) FROM changes").fetchall()[0]
    config = InsiderDestinationConfig(partner="bench", api_key="bench-key", api_base_url=url,
                                      concurrency=concurrency)
    client = InsiderClient(config)
    acked: list[tuple[int, int]] = []
    with tempfile.TemporaryDirectory(prefix="reverse_etl_client_bench_") as tmp:
        writer = Journal(Path(tmp) / "journal.jsonl")

        def on_result(batch: BatchResult) -> None:  # as run/delivery.py's
            writer.append(list(batch.acked), dict(batch.rejected), dict(batch.failed))
            acked.extend(to_ranges(list(batch.acked)))

        cpu, started = cpu_seconds(), time.perf_counter()
        stats = client.deliver(Endpoint.UPSERT, _chunks(con, "op IN ('upsert') AND payload IS NOT NULL", chunk),
                               on_result=on_result, skip_hook=True)
        wall, cpu = time.perf_counter() - started, cpu_seconds() - cpu
        writer.close()
    con.close()
    settled = sum(last - first + 1 for first, last in acked)
    if settled != rows or stats.rows_acked != rows:
        raise SystemExit(f"only {settled:,} of {rows:,} users acknowledged ({stats.rows_failed:,} failed, "
                         f"{stats.rows_rejected:,} rejected)")
    return {"code": str(Path(reverse_etl.__file__).parent.parent), "rows": rows, "requests": stats.requests,
            "avg_item_bytes": round(float(sizes[0]), 1), "wall_s": round(wall, 3),
            "users_per_s": round(rows / wall), "client_cpu_s": round(cpu, 3),
            "client_cpu_s_per_1m": round(cpu * 1_000_000 / rows, 3),
            "load_average": round(os.getloadavg()[0], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--chunk", type=int, default=20_000, help="rows per Arrow chunk")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--code", type=Path, default=BENCH.parent,
                        help="checkout whose reverse_etl is measured (default: this one)")
    parser.add_argument("--profile", type=Path, default=None, help="write a cProfile of the delivery here")
    args = parser.parse_args()
    sys.path.insert(0, str(BENCH))
    from scale_bench import start_standin  # puts this checkout on sys.path: --code goes first
    from sync_bench import free_port

    sys.path.insert(0, str(args.code.resolve()))

    port = free_port()
    standin = start_standin(port)
    try:
        for _ in range(args.repeat):
            if args.profile:
                import cProfile

                profiler = cProfile.Profile()
                result = profiler.runcall(measure, args.rows, f"http://127.0.0.1:{port}",
                                          args.concurrency, args.chunk)
                profiler.dump_stats(str(args.profile))
            else:
                result = measure(args.rows, f"http://127.0.0.1:{port}", args.concurrency, args.chunk)
            print(json.dumps(result))
    finally:
        standin.kill()
        standin.wait()


if __name__ == "__main__":
    main()
