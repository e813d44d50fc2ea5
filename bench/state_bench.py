"""What a no-change run costs with state on (moto) S3 vs local, in seconds and bytes moved.

One N-row user_attributes sync is delivered once (to the instant Insider stand-in,
``bench/standin.py``) with local state; its state is then copied to a moto S3
server (``state copy``). Then, side by side, no-change runs:

* local: the project directory with its ``.reverse_etl`` (the only way local works)
* s3, fresh checkout: a copy of the project without ``.reverse_etl`` (a new CI
  runner): the snapshot is downloaded from the bucket
* s3, warm: the same checkout again (its working copy matches the bucket, so only
  small objects are read)

Bytes are counted at the object-store layer (:data:`reverse_etl.state.objectstore.TRAFFIC`).
moto and the stand-in run in their own processes; the engine in this one.

    .venv/bin/python bench/state_bench.py --rows 1000000
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from sync_bench import MODEL, SYNCS, free_port, seed  # noqa: E402


def _wait_http(url: str) -> None:
    import httpx

    for _ in range(300):
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not start")


def _no_change(root: Path, label: str) -> dict[str, Any]:
    import reverse_etl
    from reverse_etl.state.objectstore import TRAFFIC

    TRAFFIC.requests = TRAFFIC.bytes_read = TRAFFIC.bytes_written = 0
    started = time.perf_counter()
    result = reverse_etl.run(root).syncs[0]
    seconds = time.perf_counter() - started
    if result.outcome != "success" or result.counts.get("to_send"):
        raise SystemExit(f"{label}: {result.outcome} sending {result.counts.get('to_send')}: {result.message}")
    return {"label": label, "seconds": round(seconds, 2), "requests": TRAFFIC.requests,
            "bytes_read": TRAFFIC.bytes_read, "bytes_written": TRAFFIC.bytes_written}


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="state_bench_"))
    s3_port, insider_port = free_port(), free_port()
    procs = [
        subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(s3_port)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        subprocess.Popen([sys.executable, str(ROOT / "bench" / "standin.py"), "--port", str(insider_port)]),
    ]
    try:
        _wait_http(f"http://127.0.0.1:{s3_port}/")
        _wait_http(f"http://127.0.0.1:{insider_port}/_standin/counts")
        os.environ.update(AWS_ENDPOINT_URL=f"http://127.0.0.1:{s3_port}", AWS_ALLOW_HTTP="true",
                          AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_REGION="us-east-1",
                          INSIDER_API_KEY="bench-key", INSIDER_API_URL=f"http://127.0.0.1:{insider_port}")
        import boto3

        boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"],
                     region_name="us-east-1").create_bucket(Bucket="bench")
        local = work / "local"
        (local / "models").mkdir(parents=True)
        (local / "models" / "customers.sql").write_text(MODEL)
        (local / "syncs.yml").write_text(SYNCS)
        seed(local / "warehouse.duckdb", args.rows)

        import reverse_etl
        from reverse_etl.state.copy import copy_state

        started = time.perf_counter()
        first = reverse_etl.run(local).syncs[0]
        print(f"initial run: {first.counts['acked']:,} rows acknowledged in {time.perf_counter() - started:.1f}s")
        project = reverse_etl.load_project(local)
        copy_state(project.state_dir, project.config.state, ["customers"], "s3://bench/state", base=local)

        s3 = work / "s3"
        shutil.copytree(local, s3, ignore=shutil.ignore_patterns(".reverse_etl"))
        (s3 / "syncs.yml").write_text(SYNCS + "state: {path: 's3://bench/state'}\n")
        rows = [_no_change(local, "local state"),
                _no_change(s3, "s3 state, fresh checkout"),
                _no_change(s3, "s3 state, warm working copy")]
        print(f"\nno-change run of {args.rows:,} rows (local state on disk: {_size(local / '.reverse_etl'):,} bytes)")
        print(f"{'state':<30}{'seconds':>9}{'requests':>10}{'bytes read':>14}{'bytes written':>15}")
        for row in rows:
            print(f"{row['label']:<30}{row['seconds']:>9.2f}{row['requests']:>10}"
                  f"{row['bytes_read']:>14,}{row['bytes_written']:>15,}")
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
