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
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


def timed_run(root: Path, env: dict[str, str]) -> float:
    import reverse_etl

    started = time.perf_counter()
    result = reverse_etl.run(root, environ=env)
    assert result.exit_code == 0, [(s.outcome, s.message) for s in result.syncs]
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
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
            times: dict[str, dict[str, float]] = {n: {} for n in roots}
            for name, root in roots.items():
                times[name]["first"] = timed_run(root, env)
            changed = max(1, args.rows // 100)
            for name, root in roots.items():
                with duckdb.connect(str(root / "warehouse.duckdb")) as con:
                    con.execute(f"UPDATE raw_customers SET city = 'Moved' WHERE customer_id IN "
                                f"(SELECT 'c' || i FROM range(0, {args.rows}, {args.rows // changed}) t(i))")
                times[name]["one_percent"] = timed_run(root, env)
            with duckdb.connect(str(roots["with"] / "warehouse.duckdb"), read_only=True) as con:
                logged = con.execute("SELECT count(*) FROM reverse_etl.sync_changes").fetchone()
        print(f"rows={args.rows}  change-log rows written={logged[0] if logged else 0}")
        print(f"{'run':<14}{'without (s)':>12}{'with (s)':>10}{'ratio':>8}{'extra (s)':>11}")
        for run in ("first", "one_percent"):
            a, b = times["without"][run], times["with"][run]
            print(f"{run:<14}{a:>12.2f}{b:>10.2f}{b / a:>8.2f}{b - a:>11.2f}")
    finally:
        standin.terminate()
        standin.wait(timeout=10)


if __name__ == "__main__":
    main()
