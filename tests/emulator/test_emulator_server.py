"""Running the emulator: the blocking ``serve`` in its own process, lifecycle, fixture."""

from __future__ import annotations

import re
import subprocess
import sys

import httpx
import pytest
from emulator_helpers import HEADERS, UPSERT, ok

from reverse_etl.insider.emulator import Emulator

USERS = {"users": [{"identifiers": {"uuid": "u1"}, "attributes": {"name": "a"}}]}


def test_serve_prints_a_banner_and_serves() -> None:
    code = ("from reverse_etl.insider.emulator import serve; "
            "serve(port=0, partner='shop', api_key='k1')")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", banner)
        assert match, banner
        url = match.group(1)
        r = httpx.post(url + UPSERT, json=USERS,
                       headers={"X-PARTNER-NAME": "shop", "X-REQUEST-TOKEN": "k1"})
        assert r.json() == ok(1)
        assert httpx.post(url + UPSERT, json=USERS, headers=HEADERS).status_code == 403
        assert httpx.get(url + "/_emulator/counts").json()["users"] == 1
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_module_entry_point_reports_a_busy_port() -> None:
    with Emulator() as emu:
        proc = subprocess.run([sys.executable, "-m", "reverse_etl.insider.emulator", "--port",
                               str(emu.port)], capture_output=True, text=True, timeout=30)
        assert proc.returncode == 1
        assert proc.stderr.startswith("error: ")


def test_lifecycle() -> None:
    emu = Emulator(partner="p", api_key="k").start()
    try:
        assert emu.url == f"http://127.0.0.1:{emu.port}"
        with pytest.raises(OSError):
            Emulator(port=emu.port).start()
        with pytest.raises(RuntimeError):
            emu.start()
    finally:
        emu.stop()
    emu.stop()  # idempotent
    with pytest.raises(httpx.ConnectError):
        httpx.post(emu.url + UPSERT, json=USERS, headers=HEADERS)


def test_invalid_options_are_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="lowercase"):
        Emulator(partner="Acme")
    with pytest.raises(ValueError, match="unknown fault"):
        Emulator(faults={"explode": 1})
    with pytest.raises(ValueError, match="rate-limit family"):
        Emulator(rate_limits={"everything": 5})


def test_fixture_is_acme_with_test_key(insider_emulator: Emulator) -> None:
    r = httpx.post(insider_emulator.url + UPSERT, json=USERS, headers=HEADERS)
    assert r.json() == ok(1)
    assert insider_emulator.profile(uuid="u1") is not None


def test_request_log_limit() -> None:
    with Emulator(request_log_limit=2) as emu:
        for i in range(3):
            httpx.post(emu.url + UPSERT, headers=HEADERS, json={"users": [
                {"identifiers": {"uuid": f"u{i}"}, "attributes": {"name": "a"}}]})
        assert [e["body"]["users"][0]["identifiers"]["uuid"] for e in emu.requests()] == [
            "u1", "u2"]
        assert emu.counts()["requests"] == {"upsert": 3}
