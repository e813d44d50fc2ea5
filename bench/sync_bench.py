"""End-to-end benchmark of a user_attributes sync into the emulator.

Scenario (as issue #3 asks): build an N-row model, run the initial sync into the
emulator (run in a separate process), change 1% of rows, sync again, then sync
with no change. Reports diff time, encode rate, end-to-end users/s, no-change
run time and peak RSS; then the same scenario done the way a user would by hand
(pandas merge to diff, json per row, httpx post) for a ratio.

    .venv/bin/python bench/sync_bench.py --rows 1000000
    .venv/bin/python bench/sync_bench.py --rows 1000000 --skip-baseline
    .venv/bin/python bench/sync_bench.py --memory 100000,1000000   # peak RSS growth

Each measurement of the engine runs in a fresh subprocess so peak RSS is its own.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import socket
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
    attributes: {name: first_name, city: city, country: country, ltv: lifetime_value,
                 tier: tier, email_optin: email_optin, tags: tags, signed_up_at: signed_up_at}
"""

MODEL = "select * from raw_customers"


def seed(path: Path, rows: int) -> None:
    with duckdb.connect(str(path)) as con:
        con.execute(f"""
            CREATE OR REPLACE TABLE raw_customers AS
            SELECT 'c' || i AS customer_id, 'user' || i || '@example.com' AS email,
                   'Name' || (i % 1000) AS first_name, 'City' || (i % 97) AS city,
                   (['GB','TR','US','DE'])[i % 4 + 1] AS country,
                   round(i * 0.37, 2)::DOUBLE AS lifetime_value,
                   (['gold','silver','bronze'])[i % 3 + 1] AS tier, i % 2 = 0 AS email_optin,
                   ['t' || (i % 5), 't' || (i % 7)] AS tags,
                   TIMESTAMP '2025-01-01' + INTERVAL (i % 100000) MINUTE AS signed_up_at
            FROM range({rows}) t(i)
        """)


def change_one_percent(path: Path) -> int:
    with duckdb.connect(str(path)) as con:
        con.execute("UPDATE raw_customers SET city = 'Changed' WHERE hash(customer_id) % 100 = 0")
        return int(con.execute("SELECT count(*) FROM raw_customers WHERE city = 'Changed'").fetchall()[0][0])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_emulator(port: int) -> multiprocessing.Process:
    from reverse_etl.insider.emulator import serve

    proc = multiprocessing.Process(target=serve, kwargs={
        "host": "127.0.0.1", "port": port, "partner": "bench", "api_key": "bench-key",
        "request_log_limit": 0}, daemon=True)
    proc.start()
    import httpx
    for _ in range(200):
        try:
            httpx.get(f"http://127.0.0.1:{port}/_emulator/counts", timeout=1)
            return proc
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError("emulator did not start")


def peak_rss_mb() -> float:
    """This process's peak resident memory in MiB, since it started (its exec).

    Linux's ``VmHWM``, not ``getrusage``'s ``ru_maxrss``: a child process inherits its
    parent's high-water mark into ``ru_maxrss`` across fork/exec, so an engine run
    spawned after the floor query (DuckDB with its default budget, 1.4 GB at 10M rows)
    reported the bench's peak, not its own.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def engine_phase(project: str, label: str) -> dict[str, Any]:
    """Run one sync in this process and report its timings and peak RSS."""
    import reverse_etl

    started = time.perf_counter()
    result = reverse_etl.run(project).syncs[0]
    wall = time.perf_counter() - started
    if result.outcome != "success":
        raise SystemExit(f"{label}: {result.outcome}: {result.message}")
    return {"label": label, "wall_s": round(wall, 3), "stages_s": result.seconds,
            "counts": {k: result.counts[k] for k in ("added", "changed", "unchanged", "acked")},
            "peak_rss_mb": peak_rss_mb()}


def run_phase_subprocess(project: Path, label: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--phase", str(project), "--label", label],
                         check=True, capture_output=True, text=True, env=os.environ)
    return json.loads(out.stdout.strip().splitlines()[-1])


def hand_written_baseline(warehouse: Path, url: str, state: Path) -> dict[str, Any]:
    """What a user writes by hand: pandas to diff, json.dumps per row, httpx posts.

    Each row becomes its JSON user object; the previous run's objects are kept in
    Parquet; a merge on the id finds new and changed rows. Correct, and typical.
    """
    import httpx
    import pandas as pd

    def user_json(row: dict[str, Any]) -> str:
        return json.dumps({
            "identifiers": {"uuid": row["customer_id"], "email": row["email"]},
            "attributes": {"name": row["first_name"], "city": row["city"], "country": row["country"],
                           "email_optin": bool(row["email_optin"]),
                           "custom": {"ltv": row["lifetime_value"], "tier": row["tier"],
                                      "tags": list(row["tags"]),
                                      "signed_up_at": row["signed_up_at"].strftime("%Y-%m-%dT%H:%M:%SZ")}},
            "not_append": True})

    def sync_once() -> tuple[float, int]:
        started = time.perf_counter()
        with duckdb.connect(str(warehouse), read_only=True) as con:
            current = con.execute(MODEL).df()
        current["user"] = [user_json(r) for r in current.to_dict("records")]
        current = current[["customer_id", "user"]]
        if state.exists():
            previous = pd.read_parquet(state)
            merged = current.merge(previous, on="customer_id", how="left", suffixes=("", "_old"))
            to_send = merged.loc[merged["user"] != merged["user_old"], "user"].tolist()
        else:
            to_send = current["user"].tolist()
        with httpx.Client(headers={"X-PARTNER-NAME": "bench", "X-REQUEST-TOKEN": "bench-key",
                                   "Content-Type": "application/json"}, timeout=60) as client:
            for i in range(0, len(to_send), 1000):
                body = '{"users":[' + ",".join(to_send[i:i + 1000]) + "]}"
                client.post(f"{url}/api/user/v1/upsert", content=body).raise_for_status()
        current.to_parquet(state)
        return time.perf_counter() - started, len(to_send)

    initial_s, initial_n = sync_once()
    change_one_percent(warehouse)
    changed_s, changed_n = sync_once()
    nochange_s, nochange_n = sync_once()
    return {"initial_s": round(initial_s, 2), "initial_users_per_s": round(initial_n / initial_s),
            "one_percent_s": round(changed_s, 2), "one_percent_sent": changed_n,
            "no_change_s": round(nochange_s, 2), "no_change_sent": nochange_n,
            "peak_rss_mb": peak_rss_mb()}


def scenario(rows: int, baseline: bool) -> dict[str, Any]:
    port = free_port()
    emulator = start_emulator(port)
    os.environ.update({"INSIDER_API_KEY": "bench-key", "INSIDER_API_URL": f"http://127.0.0.1:{port}"})
    report: dict[str, Any] = {"rows": rows}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            project = Path(tmp)
            (project / "models").mkdir()
            (project / "models" / "customers.sql").write_text(MODEL)
            (project / "syncs.yml").write_text(SYNCS)
            t0 = time.perf_counter()
            seed(project / "warehouse.duckdb", rows)
            report["seed_s"] = round(time.perf_counter() - t0, 2)
            initial = run_phase_subprocess(project, "initial")
            report["initial"] = initial
            report["initial_users_per_s"] = round(rows / initial["wall_s"])
            deliver = initial["stages_s"].get("deliver", 0)
            report["initial_delivery_users_per_s"] = round(rows / deliver) if deliver else None
            # Encoding (pass 2: validate, encode, build payloads) is the diff stage of a first run.
            report["encode_rows_per_s"] = round(rows / initial["stages_s"]["diff"])
            report["changed_rows"] = change_one_percent(project / "warehouse.duckdb")
            report["one_percent"] = run_phase_subprocess(project, "one_percent")
            report["no_change"] = run_phase_subprocess(project, "no_change")
            if baseline:
                import httpx
                httpx.post(f"http://127.0.0.1:{port}/_emulator/reset")
                base_dir = Path(tmp) / "baseline"
                base_dir.mkdir()
                seed(base_dir / "warehouse.duckdb", rows)
                report["hand_written"] = hand_written_baseline(
                    base_dir / "warehouse.duckdb", f"http://127.0.0.1:{port}", base_dir / "state.parquet")
                hw = report["hand_written"]
                report["ratio"] = {
                    "initial": round(hw["initial_s"] / initial["wall_s"], 1),
                    "one_percent": round(hw["one_percent_s"] / report["one_percent"]["wall_s"], 1),
                    "no_change": round(hw["no_change_s"] / report["no_change"]["wall_s"], 1),
                }
    finally:
        emulator.terminate()
        emulator.join(5)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--memory", help="comma-separated row counts: report peak RSS per size")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--label", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(engine_phase(args.phase, args.label)))
        return
    if args.memory:
        sizes = [int(s) for s in args.memory.split(",")]
        table = []
        for n in sizes:
            r = scenario(n, baseline=False)
            table.append({"rows": n, "initial_peak_rss_mb": r["initial"]["peak_rss_mb"],
                          "no_change_peak_rss_mb": r["no_change"]["peak_rss_mb"],
                          "no_change_s": r["no_change"]["wall_s"]})
        print(json.dumps(table, indent=2))
        return
    print(json.dumps(scenario(args.rows, baseline=not args.skip_baseline), indent=2))


if __name__ == "__main__":
    main()
