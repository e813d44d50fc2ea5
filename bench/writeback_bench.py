"""What write-back costs a run: the same sync with and without ``writeback:``, side by side.

Two identical DuckDB projects send to the instant-acknowledging stand-in
(``bench/standin.py``, its own process): a first run of N rows (N changes
logged), then a run after 1% of rows changed. Each is timed end to end; the
write-back project's change log is then counted in the warehouse, so the
difference is the capture (one COPY of the run's own tables) plus the flush
(DuckDB reading the spooled Parquet).

    .venv/bin/python bench/writeback_bench.py --rows 200000
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SYNCS = """
version: 1
source: {type: duckdb, path: warehouse.duckdb}
destination:
  type: insider
  partner: bench
  api_key: "{{ env_var('INSIDER_API_KEY') }}"
  api_base_url: "{{ env_var('INSIDER_API_URL') }}"
  concurrency: 4
syncs:
  - name: customers
    model: customers
    identifiers: {uuid: customer_id, email: email}
    attributes: {name: first_name, city: city, ltv: lifetime_value}
"""


def make(root: Path, rows: int, writeback: bool) -> None:
    (root / "models").mkdir(parents=True)
    (root / "models" / "customers.sql").write_text("select * from raw_customers")
    (root / "syncs.yml").write_text(SYNCS + ("writeback: {}\n" if writeback else ""))
    with duckdb.connect(str(root / "warehouse.duckdb")) as con:
        con.execute(f"""CREATE TABLE raw_customers AS
            SELECT 'c' || i AS customer_id, 'user' || i || '@example.com' AS email,
                   'Name' || i AS first_name, 'City' || (i % 50) AS city, (i * 1.5)::DOUBLE AS lifetime_value
            FROM range({rows}) t(i)""")


SPENT: dict[str, float] = {"capture": 0.0, "flush": 0.0}


def instrument() -> None:
    """Time the write-back's own two steps inside the runs (capture and flush)."""
    from reverse_etl import context
    from reverse_etl.writeback import capture

    def timed(name: str, fn: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                SPENT[name] += time.perf_counter() - started
        return wrapper

    capture._Capture._copy_workspace = timed("capture", capture._Capture._copy_workspace)  # type: ignore[method-assign]
    context.flush_spool = timed("flush", context.flush_spool)


def timed_run(root: Path, env: dict[str, str]) -> float:
    import reverse_etl

    started = time.perf_counter()
    result = reverse_etl.run(root, environ=env)
    assert result.exit_code == 0, [(s.outcome, s.message) for s in result.syncs]
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3, help="1%% change runs per project")
    args = parser.parse_args()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    standin = subprocess.Popen([sys.executable, str(ROOT / "bench" / "standin.py"), "--port", str(port)])
    try:
        time.sleep(1.5)
        env = {"INSIDER_API_KEY": "bench-key", "INSIDER_API_URL": f"http://127.0.0.1:{port}"}
        with tempfile.TemporaryDirectory(prefix="retl_wb_bench_") as tmp:
            roots = {"without": Path(tmp) / "without", "with": Path(tmp) / "with"}
            for name, root in roots.items():
                make(root, args.rows, writeback=name == "with")
            instrument()
            times: dict[str, dict[str, list[float]]] = {n: {"first": [], "one_percent": []} for n in roots}
            spent: dict[str, list[float]] = {"first": [], "one_percent": []}
            for name, root in roots.items():
                before = SPENT["capture"] + SPENT["flush"]
                times[name]["first"].append(timed_run(root, env))
                if name == "with":
                    spent["first"].append(SPENT["capture"] + SPENT["flush"] - before)
            changed = max(1, args.rows // 100)
            for repeat in range(args.repeat):  # interleaved, so machine noise hits both alike
                for name, root in roots.items():
                    with duckdb.connect(str(root / "warehouse.duckdb")) as con:
                        con.execute(f"UPDATE raw_customers SET city = 'Moved{repeat}' WHERE customer_id IN "
                                    f"(SELECT 'c' || i FROM range(0, {args.rows}, {args.rows // changed}) t(i))")
                    before = SPENT["capture"] + SPENT["flush"]
                    times[name]["one_percent"].append(timed_run(root, env))
                    if name == "with":
                        spent["one_percent"].append(SPENT["capture"] + SPENT["flush"] - before)
            with duckdb.connect(str(roots["with"] / "warehouse.duckdb"), read_only=True) as con:
                logged = con.execute("SELECT count(*) FROM reverse_etl.sync_changes").fetchone()
        print(f"rows={args.rows}  change-log rows written over all runs={logged[0] if logged else 0}")
        print(f"{'run (median)':<16}{'without (s)':>12}{'with (s)':>10}{'ratio':>8}{'write-back own (s)':>20}")
        for run in ("first", "one_percent"):
            a, b = statistics.median(times["without"][run]), statistics.median(times["with"][run])
            print(f"{run:<16}{a:>12.2f}{b:>10.2f}{b / a:>8.2f}{statistics.median(spent[run]):>20.3f}")
    finally:
        standin.terminate()
        standin.wait(timeout=10)


if __name__ == "__main__":
    main()
