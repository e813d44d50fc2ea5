"""The open-source peer drt (drt-core on PyPI) on the scale bench's data, against the same stand-in.

    .venv/bin/python bench/drt_peer.py --rows 100000 --port 8801

drt runs from its own venv (``bench/.drt-venv``, created on first use with
``pip install drt-core[duckdb]==1.2.1``; never the project's venv), as a ``drt run``
subprocess per phase, timed wall-clock: initial, no-change, 1%-changed.

Mode compared: drt's ``mode: incremental`` with a watermark cursor
(``cursor_field: updated_at``). That is drt's closest to "send only changed
rows" for this pair: its row-level diff (``incremental_strategy: diff``) is
only implemented for Postgres, Snowflake, Databricks and BigQuery sources and
needs a destination ``upsert_key``, which ``rest_api`` does not have; on a
DuckDB source drt raises NotImplementedError for it. The seed has no
``updated_at`` column, so drt's copy of the data gets one (one fixed
timestamp), and after ``change_one_percent`` the changed rows' ``updated_at`` is
stamped, untimed, as a pipeline maintaining that column would. A watermark sees
only what was stamped: an unstamped change or a delete is never sent, and the
no-change run reads only rows past the cursor (nothing to digest), so its
no-change time is not the same work as the engine's diff.

Destination: drt's ``rest_api`` in ``body_mode: batch``, ``max_records_per_request:
1000``, a Jinja ``batch_template`` rendering Insider's ``{"users": [...]}`` body,
``rate_limit.requests_per_second: 0`` (drt's default is 10 requests/s), one
request at a time (drt's rest_api has no concurrency).

Each phase's time is the whole ``drt run`` process, so it includes drt's CLI
start (``drt --help`` takes 0.7-0.9 s here): that start is nearly all of its
no-change run. The engine's times in scale_bench are taken inside its process.
drt's ``mode: full`` (no state at all) resends every row on every run: at 100k
its no-change run took the same 10.7 s as its initial run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))

from sync_bench import change_one_percent, seed  # noqa: E402

DRT_VERSION = "1.2.1"
VENV = BENCH / ".drt-venv"
MODE = ("drt incremental (watermark cursor_field: updated_at, added to drt's copy and stamped on the 1% "
        "changed rows); rest_api batch of 1000 users per POST, no rate limit")


def drt_bin() -> Path:
    """drt's CLI in its own venv, created on first use."""
    exe = VENV / "bin" / "drt"
    if not exe.exists():
        print(f"creating {VENV} with drt-core[duckdb]=={DRT_VERSION} (first use)", file=sys.stderr)
        subprocess.run([shutil.which("python3") or sys.executable, "-m", "venv", str(VENV)],
                       check=True)
        subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", f"drt-core[duckdb]=={DRT_VERSION}"], check=True)
    return exe


def users_total(url: str) -> int:
    import httpx

    return int(httpx.get(f"{url}/_standin/counts", timeout=10).json()["users"])


def write_project(root: Path, url: str) -> None:
    (root / "syncs" / "models").mkdir(parents=True)
    (root / "home" / ".drt").mkdir(parents=True)
    (root / "drt_project.yml").write_text('name: bench\nversion: "0.1"\nprofile: bench\n')
    (root / "home" / ".drt" / "profiles.yml").write_text(
        f"bench:\n  type: duckdb\n  database: {root / 'warehouse.duckdb'}\n")
    (root / "syncs" / "models" / "customers.sql").write_text("select * from raw_customers\n")
    sync = (BENCH / "drt" / "customers.yml.tmpl").read_text().replace("__URL__", url)
    (root / "syncs" / "customers.yml").write_text(sync)


def run_drt(root: Path) -> float:
    env = {**os.environ, "HOME": str(root / "home")}
    started = time.perf_counter()
    out = subprocess.run([str(drt_bin()), "run"], cwd=root, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if out.returncode != 0:
        raise SystemExit(f"drt run failed ({out.returncode}):\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    return wall


def drt_phase(rows: int, url: str) -> dict[str, Any]:
    """drt initial, no-change and 1%-changed runs on its own copy of the data, against ``url``."""
    drt_bin()
    with tempfile.TemporaryDirectory(prefix="reverse_etl_scale_drt_") as tmp:
        root = Path(tmp)
        write_project(root, url)
        warehouse = root / "warehouse.duckdb"
        seed(warehouse, rows)
        with duckdb.connect(str(warehouse)) as con:
            con.execute("ALTER TABLE raw_customers ADD COLUMN updated_at TIMESTAMP DEFAULT TIMESTAMP '2025-06-01'")
        sent: dict[str, int] = {}
        before = users_total(url)
        initial = run_drt(root)
        sent["initial"], before = users_total(url) - before, users_total(url)
        no_change = run_drt(root)
        sent["no_change"], before = users_total(url) - before, users_total(url)
        changed = change_one_percent(warehouse)
        with duckdb.connect(str(warehouse)) as con:  # what an updated_at-maintaining pipeline would do
            con.execute("UPDATE raw_customers SET updated_at = TIMESTAMP '2025-06-02' WHERE city = 'Changed'")
        one_pct = run_drt(root)
        sent["one_percent"] = users_total(url) - before
    expected = {"initial": rows, "no_change": 0, "one_percent": changed}
    problems = [f"{k}: stand-in counted {sent[k]:,} users, expected {v:,}" for k, v in expected.items() if sent[k] != v]
    return {"rows": rows, "initial_s": round(initial, 2), "no_change_s": round(no_change, 2),
            "one_percent_s": round(one_pct, 2), "initial_users_per_s": round(rows / initial),
            "users_sent": sent, "expected_users": expected, "delivered_as_expected": not problems,
            "problems": problems, "mode": MODE, "drt_version": DRT_VERSION,
            "load_average": os.getloadavg()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--port", type=int, default=0, help="stand-in port (default: a free one)")
    args = parser.parse_args()
    from scale_bench import start_standin
    from sync_bench import free_port

    port = args.port or free_port()
    standin = start_standin(port)
    try:
        print(json.dumps(drt_phase(args.rows, f"http://127.0.0.1:{port}"), indent=2))
    finally:
        standin.kill()


if __name__ == "__main__":
    main()
