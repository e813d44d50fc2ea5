"""How the engine scales: initial, no-change and 1%-changed runs at several sizes.

Insider is replaced by ``bench/standin.py`` (acknowledges instantly, in its own
process), so only the engine is timed. For each size the bench also runs the
*floor* of a no-change run, side by side on the same file: one DuckDB query that
computes an md5 of the mapped values of every row and anti-joins it against the
previous run's (key, digest) Parquet. Each engine run is its own subprocess, so
its peak RSS is its own. Ratios (no-change / floor, 1% / no-change, growth
between sizes) are what to compare; absolute seconds drift on shared machines.

    .venv/bin/python bench/scale_bench.py --rows 1000000,3000000
    .venv/bin/python bench/scale_bench.py --rows 1000000,3000000,10000000 --json out.json
    .venv/bin/python bench/scale_bench.py --rows 1000000 --baseline   # + pandas/json-per-row by hand
    .venv/bin/python bench/scale_bench.py --rows 1000000,3000000,10000000 --baseline --peer  # + drt

``--baseline`` and ``--peer`` (drt, see ``bench/drt_peer.py``) run at the first size only.

The table ends with the targets of issue #18 checked against this run, and the
machine's load average (other work on a shared machine inflates every number).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
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

from sync_bench import (  # noqa: E402
    MODEL,
    SYNCS,
    change_one_percent,
    free_port,
    hand_written_baseline,
    peak_rss_mb,
    seed,
)

MAPPED = ["customer_id", "email", "first_name", "city", "country", "lifetime_value", "tier",
          "email_optin", "tags", "signed_up_at"]


def start_standin(port: int) -> subprocess.Popen[bytes]:
    import httpx

    proc = subprocess.Popen([sys.executable, str(BENCH / "standin.py"), "--port", str(port)])
    for _ in range(200):
        try:
            httpx.get(f"http://127.0.0.1:{port}/_standin/counts", timeout=1)
            return proc
        except httpx.TransportError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("stand-in did not start")


def engine_phase(project: str) -> dict[str, Any]:
    """One run in this process: wall time, stage times, counts, peak RSS."""
    import reverse_etl

    started = time.perf_counter()
    result = reverse_etl.run(project).syncs[0]
    wall = time.perf_counter() - started
    if result.outcome != "success":
        raise SystemExit(f"{result.outcome}: {result.message}")
    return {"wall_s": round(wall, 3), "stages_s": result.seconds, "acked": result.counts.get("acked", 0),
            "peak_rss_mb": peak_rss_mb()}


def run_engine(project: Path) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--phase", str(project)], check=True,
                         capture_output=True, text=True, env=os.environ)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def floor_query(warehouse: Path, work: Path, memory_limit: str | None) -> float:
    """The least a no-change run must do: digest every row, anti-join the previous digests."""
    digest = "md5(concat_ws(chr(31), " + ", ".join(f"coalesce(CAST({c} AS VARCHAR), '')" for c in MAPPED) + "))"
    prev = work / "floor_prev.parquet"
    with duckdb.connect(config={"memory_limit": memory_limit} if memory_limit else {}) as con:
        con.execute(f"ATTACH '{warehouse}' AS w (READ_ONLY)")
        con.execute(f"COPY (SELECT customer_id AS key, {digest} AS digest FROM w.raw_customers) "
                    f"TO '{prev}' (FORMAT parquet)")
        started = time.perf_counter()
        con.execute(f"""SELECT count(*) FROM (SELECT customer_id AS key, {digest} AS digest FROM w.raw_customers) c
                        ANTI JOIN read_parquet('{prev}') p ON p.key = c.key AND p.digest = c.digest""").fetchall()
        return time.perf_counter() - started


def baseline_phase(rows: int, url: str) -> dict[str, Any]:
    """The hand-written sync (pandas diff, json per row, httpx posts) on its own copy of the data."""
    with tempfile.TemporaryDirectory(prefix="reverse_etl_scale_hand_") as tmp:
        seed(Path(tmp) / "warehouse.duckdb", rows)
        return hand_written_baseline(Path(tmp) / "warehouse.duckdb", url, Path(tmp) / "state.parquet")


def run_baseline(rows: int, url: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--baseline-phase", f"{rows},{url}"], check=True,
                         capture_output=True, text=True, env=os.environ)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def measure(rows: int, url: str, memory_limit: str | None, baseline: bool = False,
            peer: bool = False) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="reverse_etl_scale_") as tmp:
        root = Path(tmp)
        (root / "models").mkdir()
        (root / "models" / "customers.sql").write_text(MODEL)
        # No memory_limit: the project's default budget, unless --memory-limit sets one.
        (root / "syncs.yml").write_text(SYNCS + (f"state: {{memory_limit: {memory_limit}}}\n" if memory_limit else ""))
        seed(root / "warehouse.duckdb", rows)
        initial = run_engine(root)
        no_change = run_engine(root)
        floor = floor_query(root / "warehouse.duckdb", root, memory_limit)
        changed = change_one_percent(root / "warehouse.duckdb")
        one_pct = run_engine(root)
    extra: dict[str, Any] = {}
    if baseline:
        hand = run_baseline(rows, url)
        extra = {"hand_written": hand, "hand_over_engine": {
            "initial": round(hand["initial_s"] / initial["wall_s"], 1),
            "no_change": round(hand["no_change_s"] / no_change["wall_s"], 1),
            "one_percent": round(hand["one_percent_s"] / one_pct["wall_s"], 1)}}
    if peer:  # the open-source peer drt on its own copy of the same data (bench/drt_peer.py)
        from drt_peer import drt_phase

        drt = drt_phase(rows, url)
        extra.update(drt=drt, drt_over_engine={
            "initial": round(drt["initial_s"] / initial["wall_s"], 1),
            "no_change": round(drt["no_change_s"] / no_change["wall_s"], 1),
            "one_percent": round(drt["one_percent_s"] / one_pct["wall_s"], 1)})
    return {**extra, "load_average": os.getloadavg()[0], "rows": rows, "initial": initial, "no_change": no_change, "one_percent": one_pct,
            "changed_rows": changed, "floor_s": round(floor, 3),
            "initial_users_per_s": round(rows / initial["wall_s"]),
            "no_change_over_floor": round(no_change["wall_s"] / floor, 2),
            "one_percent_over_no_change": round(one_pct["wall_s"] / no_change["wall_s"], 2),
            "peak_rss_mb": max(initial["peak_rss_mb"], no_change["peak_rss_mb"], one_pct["peak_rss_mb"])}


def print_table(results: list[dict[str, Any]]) -> None:
    """The issue #18 table, growth between sizes, the hand-written ratios and the targets."""
    print(f"{'rows':>11} | {'initial':>17} | {'no-change':>9} | {'floor':>6} | {'nc/floor':>8} | "
          f"{'1%':>7} | {'1%/nc':>5} | {'peak RSS':>9} | load")
    for r in results:
        print(f"{r['rows']:>11,} | {r['initial']['wall_s']:>6.2f} s {r['initial_users_per_s']:>6,}/s | "
              f"{r['no_change']['wall_s']:>7.2f} s | {r['floor_s']:>4.2f} s | {r['no_change_over_floor']:>7.2f}x | "
              f"{r['one_percent']['wall_s']:>5.2f} s | {r['one_percent_over_no_change']:>4.2f}x | "
              f"{r['peak_rss_mb']:>6,.0f} MB | {r['load_average']:.2f}")
    for r in results:
        if "hand_over_engine" in r:
            h = r["hand_over_engine"]
            print(f"hand-written (pandas + json per row) at {r['rows']:,} rows takes x{h['initial']} the engine's "
                  f"initial run, x{h['no_change']} its no-change run, x{h['one_percent']} its 1% run")
    for r in results:
        if "drt_over_engine" in r:
            d = r["drt_over_engine"]
            print(f"drt {r['drt'].get('drt_version', '?')} ({r['drt'].get('mode', '?')}) at {r['rows']:,} rows takes "
                  f"x{d['initial']} the engine's initial run, x{d['no_change']} its no-change run, "
                  f"x{d['one_percent']} its 1% run")
    for small, big in itertools.pairwise(results):
        scale = big["rows"] / small["rows"]
        print(f"{small['rows']:,} -> {big['rows']:,} rows (x{scale:g}): initial x"
              f"{big['initial']['wall_s'] / small['initial']['wall_s']:.2f}, no-change x"
              f"{big['no_change']['wall_s'] / small['no_change']['wall_s']:.2f}")
    for r in results:
        rate_target = 200_000 if r["rows"] <= 1_000_000 else 150_000
        checks = {f"initial >= {rate_target:,}/s": r["initial_users_per_s"] >= rate_target,
                  "no-change <= 2x floor": r["no_change_over_floor"] <= 2,
                  "1% <= 1.5x no-change": r["one_percent_over_no_change"] <= 1.5,
                  "peak RSS <= 1 GB": r["peak_rss_mb"] <= 1024}
        print(f"targets at {r['rows']:,} rows: " + ", ".join(
            f"{name} {'met' if ok else 'NOT met'}" for name, ok in checks.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="1000000,3000000")
    parser.add_argument("--memory-limit", default=None, help="the engine's state.memory_limit (default: its own)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--baseline", action="store_true",
                        help="also time the hand-written pandas + json-per-row sync on the same data")
    parser.add_argument("--peer", action="store_true",
                        help="also time the open-source peer drt on the same data (bench/drt_peer.py)")
    parser.add_argument("--phase", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--baseline-phase", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(engine_phase(args.phase)))
        return
    if args.baseline_phase:
        rows, url = args.baseline_phase.split(",", 1)
        print(json.dumps(baseline_phase(int(rows), url)))
        return
    port = free_port()
    standin = start_standin(port)
    os.environ.update(INSIDER_API_KEY="bench-key", INSIDER_API_URL=f"http://127.0.0.1:{port}")
    try:
        # The hand-written sync and the peer are slow: timed at the first size only.
        results = [measure(int(n), f"http://127.0.0.1:{port}", args.memory_limit, args.baseline and i == 0,
                           args.peer and i == 0)
                   for i, n in enumerate(args.rows.split(","))]
    finally:
        standin.kill()
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
