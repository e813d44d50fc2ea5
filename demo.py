"""The example project, end to end, on a laptop: `python demo.py`.

1. seeds warehouse.duckdb with 1,000 deterministic customers (warehouse/seed.sql);
2. starts the bundled Insider emulator on 127.0.0.1:8787;
3. runs `reverse-etl run` (first run: sends everything);
4. edits the warehouse (warehouse/changes.sql: 5 changed, 2 removed, 3 added);
5. runs `reverse-etl run` again: only the edits are sent;
6. shows what the emulator now holds for a changed customer, then stops it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import httpx

ROOT = Path(__file__).resolve().parent
PORT = int(os.environ.get("DEMO_PORT", "8787"))
ENV = {
    **os.environ,
    "INSIDER_PARTNER": "demo",
    "INSIDER_API_KEY": os.environ.get("INSIDER_API_KEY", "demo-local-key"),
    "INSIDER_API_URL": f"http://127.0.0.1:{PORT}",
    "INSIDER_FPS_URL": f"http://127.0.0.1:{PORT}",
}
CLI = [sys.executable, "-m", "reverse_etl"]


def sql_file(name: str) -> None:
    with duckdb.connect(str(ROOT / "warehouse.duckdb")) as con:
        con.execute((ROOT / "warehouse" / name).read_text())


def reverse_etl(*args: str) -> None:
    print(f"\n$ reverse-etl {' '.join(args)}", flush=True)
    code = subprocess.call([*CLI, *args], cwd=ROOT, env=ENV)
    if code not in (0, 3):
        sys.exit(code)


def main() -> None:
    for leftover in ("warehouse.duckdb", ".reverse_etl"):
        path = ROOT / leftover
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    sql_file("seed.sql")
    emulator = subprocess.Popen(
        [*CLI, "emulator", "--port", str(PORT), "--partner", "demo", "--api-key", ENV["INSIDER_API_KEY"]],
        cwd=ROOT, env=ENV)
    try:
        base = f"http://127.0.0.1:{PORT}"
        for _ in range(100):
            try:
                httpx.get(f"{base}/_emulator/counts", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        reverse_etl("validate")
        reverse_etl("run")
        print("\n-- editing the warehouse: 5 customers changed, 2 removed, 3 added", flush=True)
        sql_file("changes.sql")
        reverse_etl("plan", "--select", "customer_profiles")
        reverse_etl("run")
        reverse_etl("history")
        profile = httpx.get(f"{base}/_emulator/profile", params={"uuid": "c00001"}).json()
        print("\nemulator now holds for c00001:", profile.get("attributes", profile), flush=True)
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)


if __name__ == "__main__":
    main()
