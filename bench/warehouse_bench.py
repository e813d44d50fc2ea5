"""Local engine vs warehouse engine on the same PostgreSQL model: rows transferred and wall time.

A throwaway PostgreSQL cluster (initdb/pg_ctl on a free port) holds two copies of
the same ``raw_customers`` table, one per engine (each sync keeps its own state).
For each engine: an initial run, a no-change run, then the same 1% of rows
(``customer_id`` number divisible by 100) change and a 1%-changed run. Insider
is ``bench/standin.py`` (acknowledges instantly, in its own process), so the
engines are what is timed. Each run is its own subprocess.

"rows out of Postgres" is what the tool counted: the local engine reads every
row of the model on every run; the warehouse engine's ``transferred`` count
(changed rows + removed keys). Ratios in the same run are what to compare;
absolute seconds drift on a shared machine (the load average is printed).

    .venv/bin/python bench/warehouse_bench.py                 # 1M rows
    .venv/bin/python bench/warehouse_bench.py --rows 100000   # quick
    .venv/bin/python bench/warehouse_bench.py --ten-million   # 1M and 10M (long)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent / "tests"))
sys.path.insert(0, str(BENCH.parent / "tests" / "warehouse_engine"))

from scale_bench import start_standin  # noqa: E402
from sync_bench import free_port, peak_rss_mb  # noqa: E402

SYNCS = """
version: 1
source: {{type: sqlalchemy, url: "{url}", engine: {engine}}}
destination:
  type: insider
  partner: bench
  api_key: "{{{{ env_var('INSIDER_API_KEY') }}}}"
  api_base_url: "{{{{ env_var('INSIDER_API_URL') }}}}"
  concurrency: 4
syncs:
  - name: customers
    model: customers
    identifiers: {{uuid: customer_id, email: email}}
    attributes: {{name: first_name, city: city, country: country, ltv: lifetime_value,
                 tier: tier, email_optin: email_optin, tags: tags, signed_up_at: signed_up_at}}
"""

SEED = """
CREATE TABLE raw_customers AS
SELECT 'c' || i AS customer_id, 'user' || i || '@example.com' AS email,
       'Name' || (i % 1000) AS first_name, 'City' || (i % 97) AS city,
       (ARRAY['GB','TR','US','DE'])[i % 4 + 1] AS country,
       round(i * 0.37, 2)::double precision AS lifetime_value,
       (ARRAY['gold','silver','bronze'])[i % 3 + 1] AS tier, i % 2 = 0 AS email_optin,
       ARRAY['t' || (i % 5), 't' || (i % 7)] AS tags,
       TIMESTAMP '2025-01-01' + (i % 100000) * INTERVAL '1 minute' AS signed_up_at
FROM generate_series(0, {last}) AS t(i);
ALTER TABLE raw_customers ADD PRIMARY KEY (customer_id);
ANALYZE raw_customers
"""

CHANGE = "UPDATE raw_customers SET city = 'Changed' WHERE substr(customer_id, 2)::bigint % 100 = 0"


def phase(project: str) -> dict[str, Any]:
    """One run in this process: wall time and what the tool counted."""
    import reverse_etl

    started = time.perf_counter()
    result = reverse_etl.run(project).syncs[0]
    wall = time.perf_counter() - started
    if result.outcome != "success":
        raise SystemExit(f"{result.outcome}: {result.message}")
    c = result.counts
    rows_out = c["transferred"] if "transferred" in c else (
        c.get("added", 0) + c.get("changed", 0) + c.get("unchanged", 0) + c.get("invalid", 0))
    return {"wall_s": round(wall, 2), "rows_out": rows_out, "sent": c.get("acked", 0),
            "uploaded": c.get("uploaded", 0), "stages_s": result.seconds,
            "peak_rss_mb": round(peak_rss_mb())}


def run_phase(project: Path) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--phase", str(project)],
                         capture_output=True, text=True, env=os.environ)
    if out.returncode:  # say why: the run's own message is the last line of its stderr
        tail = "\n".join(out.stderr.strip().splitlines()[-15:])
        raise SystemExit(f"run of {project} exited {out.returncode}:\n{tail}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def measure(pg: Any, rows: int, work: Path) -> dict[str, Any]:
    projects: dict[str, tuple[Path, str]] = {}
    for engine in ("local", "warehouse"):
        database = pg.create_database()
        pg.sql(database, SEED.format(last=rows - 1))
        root = work / f"{engine}-{rows}"
        (root / "models").mkdir(parents=True)
        (root / "models" / "customers.sql").write_text("select * from raw_customers")
        (root / "syncs.yml").write_text(SYNCS.format(url=pg.url(database), engine=engine))
        projects[engine] = (root, database)
    out: dict[str, Any] = {"rows": rows}
    for engine, (root, database) in projects.items():
        initial = run_phase(root)
        no_change = run_phase(root)
        pg.sql(database, CHANGE)
        one_pct = run_phase(root)
        out[engine] = {"initial": initial, "no_change": no_change, "one_percent": one_pct}
    out["changed_rows"] = rows // 100
    out["load_average"] = round(os.getloadavg()[0], 2)
    return out


def print_table(results: list[dict[str, Any]]) -> None:
    print(f"{'rows':>10} {'run':<12} {'local: rows out':>16} {'wall s':>8} {'warehouse: rows out':>20} "
          f"{'wall s':>8} {'rows out ratio':>15} {'time ratio':>11}")
    for r in results:
        for name in ("initial", "no_change", "one_percent"):
            lo, wh = r["local"][name], r["warehouse"][name]
            ratio = f"1/{lo['rows_out'] / wh['rows_out']:.0f}" if wh["rows_out"] else "0"
            print(f"{r['rows']:>10} {name:<12} {lo['rows_out']:>16} {lo['wall_s']:>8.2f} {wh['rows_out']:>20} "
                  f"{wh['wall_s']:>8.2f} {ratio:>15} {wh['wall_s'] / lo['wall_s']:>11.2f}")
        print(f"{'':>10} (changed rows: {r['changed_rows']}; warehouse first run uploaded "
              f"{r['warehouse']['initial']['uploaded']} key digests; load average {r['load_average']})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--ten-million", action="store_true", help="also 10M rows (long)")
    parser.add_argument("--json", type=Path, help="write the raw results here")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(phase(args.phase)))
        return
    from pg_helpers import running_cluster

    sizes = [args.rows] + ([10_000_000] if args.ten_million else [])
    port = free_port()
    standin = start_standin(port)
    os.environ.update({"INSIDER_API_KEY": "bench-key", "INSIDER_API_URL": f"http://127.0.0.1:{port}"})
    results = []
    try:
        with tempfile.TemporaryDirectory(prefix="reverse_etl_wh_bench_") as tmp, \
                running_cluster(Path(tmp)) as pg:
            for rows in sizes:
                results.append(measure(pg, rows, Path(tmp)))
                if args.json:  # each size as it finishes: a later failure keeps the earlier ones
                    args.json.write_text(json.dumps(results, indent=2))
    finally:
        standin.kill()
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
