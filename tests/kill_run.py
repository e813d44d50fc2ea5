"""Kill a real ``reverse-etl run`` with SIGKILL once Insider has acknowledged some upserts.

Shared by the crash tests of the local engine and of the warehouse engine (Postgres,
fakesnow): the run is a child process, so what it leaves behind is exactly what a crash
leaves (a pending change set and a journal), and the next run must recover from it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

from project_factory import ProjectUnderTest
from test_sync_engine import UPSERT

from reverse_etl.insider.emulator import Emulator


def acked_upserts(emu: Emulator) -> int:
    """Upsert requests the emulator answered 200."""
    return sum(1 for e in emu.requests() if e["path"] == UPSERT and e["status"] == 200)


def start_run(project: ProjectUnderTest) -> subprocess.Popen[bytes]:
    """``reverse-etl run`` on ``project`` as a child process."""
    env = {**os.environ, **project.env}
    return subprocess.Popen([sys.executable, "-m", "reverse_etl", "--project", str(project.root), "run"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def kill_when(proc: subprocess.Popen[bytes], ready: Callable[[], bool], *, timeout: float,
              never: str) -> None:
    """SIGKILL ``proc`` as soon as ``ready()``; fail with ``never`` if it does not come in time."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, never
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def kill_mid_delivery(project: ProjectUnderTest, emu: Emulator, *, after_acked: int = 8,
                      timeout: float = 60) -> None:
    """Start ``reverse-etl run`` on ``project``; SIGKILL it once ``after_acked`` upserts are acked."""
    kill_when(start_run(project), lambda: acked_upserts(emu) >= after_acked, timeout=timeout,
              never="delivery never started")
