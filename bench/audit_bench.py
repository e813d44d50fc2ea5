"""What an audit costs next to a run, on one synced project (emulator in-process, 127.0.0.1).

    .venv/bin/python bench/audit_bench.py [--rows 100000] [--sample 200]

Syncs ``rows`` users once, then times, in one process and one go: a no-change
``run``, a full audit (one raw export, JSON Lines, compared in DuckDB), and a
sample audit of ``sample`` users at Insider's default profile-read quota (1,000
units a minute: the quota, not the engine, sets its pace). Prints seconds, users
per second and the ratio of each audit to the no-change run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from project_factory import make_project

import reverse_etl
from reverse_etl.insider.emulator import Emulator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--sample", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, Emulator(partner="acme", api_key="test-key") as emu:
        project = make_project(Path(tmp) / "p", emu.url, rows=args.rows)
        env = project.env
        t0 = time.perf_counter()
        assert reverse_etl.run(project.root, environ=env).exit_code == 0
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        assert reverse_etl.run(project.root, environ=env).syncs[0].counts["to_send"] == 0
        nochange = time.perf_counter() - t0
        t0 = time.perf_counter()
        full = reverse_etl.audit(project.root, "customers", segment_id=123456789, force=True, environ=env)
        full_s = time.perf_counter() - t0
        assert full.exit_code == 0 and full.checked == args.rows
        t0 = time.perf_counter()
        sample = reverse_etl.audit(project.root, "customers", sample=args.sample, environ=env)
        sample_s = time.perf_counter() - t0
        assert sample.exit_code == 0
    print(f"rows {args.rows:,}; first run {first:.2f}s")
    print(f"{'what':<34}{'seconds':>9}{'users/s':>12}{'x no-change run':>17}")
    for what, seconds, users in (("no-change run", nochange, args.rows),
                                 ("full audit (export + compare)", full_s, args.rows),
                                 (f"sample audit ({args.sample} reads)", sample_s, args.sample)):
        print(f"{what:<34}{seconds:>9.2f}{users / seconds:>12,.0f}{seconds / nochange:>17.1f}")
    print(f"full audit: export {full.cost['export_seconds']:.2f}s, {full.cost['export_bytes']:,} bytes; "
          f"sample: {sample.cost['quota_units']:g} quota units, reads {sample.cost['read_seconds']:.2f}s")


if __name__ == "__main__":
    main()
