"""`reverse-etl serve` as a user starts it, on a copy of the example project."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import httpx

from reverse_etl.insider.emulator import Emulator

REPO = Path(__file__).resolve().parents[2]
TOKEN = "cli-serve-token-90f3"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_on_the_example_project_schedules_both_syncs_and_obeys_the_token(
        tmp_path: Path, insider_emulator: Emulator) -> None:
    root = tmp_path / "example"
    root.mkdir()
    shutil.copy(REPO / "syncs.yml", root / "syncs.yml")
    shutil.copytree(REPO / "models", root / "models")
    with duckdb.connect(str(root / "warehouse.duckdb")) as con:
        con.execute((REPO / "warehouse" / "seed.sql").read_text())
    port = _free_port()
    env = {**os.environ, "INSIDER_PARTNER": "acme", "INSIDER_API_KEY": "test-key",
           "INSIDER_API_URL": insider_emulator.url, "INSIDER_FPS_URL": insider_emulator.url,
           "REVERSE_ETL_SERVE_TOKEN": TOKEN}
    server = subprocess.Popen([sys.executable, "-m", "reverse_etl", "serve", "--port", str(port)], cwd=root,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        else:
            raise AssertionError("serve did not answer /healthz")
        syncs = {s["sync"]: s for s in httpx.get(f"{base}/api/syncs", timeout=30).json()["syncs"]}
        assert syncs["customer_profiles"]["schedule"] == "0 * * * * (UTC)"
        assert syncs["vip_flags"]["schedule"] == "30 6 * * * (Europe/Istanbul)"
        assert syncs["customer_profiles"]["next_run"].endswith(":00:00Z")
        assert syncs["vip_flags"]["next_run"].endswith("T03:30:00Z")  # 06:30 in Istanbul
        refused = httpx.post(f"{base}/api/syncs/vip_flags/runs", timeout=30)
        assert refused.status_code == 401 and insider_emulator.profiles() == []
        ran = httpx.post(f"{base}/api/syncs/vip_flags/runs", params={"wait": "true"}, timeout=120,
                         headers={"Authorization": f"Bearer {TOKEN}"})
        assert ran.status_code == 200 and ran.json()["outcome"] == "success"
        assert ran.json()["counts"]["acked"] > 0 and insider_emulator.profiles()
    finally:
        server.send_signal(signal.SIGTERM)
        out, err = server.communicate(timeout=30)
    assert server.returncode == 0, err
    assert "Traceback" not in err and TOKEN not in out + err
    assert (f"on http://127.0.0.1:{port} (schedules: customer_profiles 0 * * * * (UTC), "
            "vip_flags 30 6 * * * (Europe/Istanbul))") in err
