"""Running the emulator: in-process in a background thread (:class:`Emulator`) or blocking
(:func:`serve`, used by ``reverse-etl emulator`` and ``python -m reverse_etl.insider.emulator``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import web

from .app import create_app
from .state import EmulatorOptions, EmulatorState, SegmentPredicate
from .tenant import load_tenant_config


def tune_gc_for_throughput() -> None:
    """Make CPython's cyclic GC collect far less often (process-wide).

    A 1,000-user request allocates thousands of containers and the store keeps
    hundreds of thousands alive; with default thresholds the collector costs more
    than validation itself (measured on 2 cores: ~35,000 vs ~90,000 users/s).
    """
    gc.collect()
    gc.freeze()  # objects alive now (imports, config) never need scanning again
    gc.set_threshold(100_000, 50, 100)


class Emulator:
    """A local Insider One API on ``host:port`` (``port=0``: a free port).

    Use as a context manager (``with Emulator() as emu: ...``) or call
    :meth:`start` / :meth:`stop`. ``emu.url`` serves the UCD paths, the FPS path
    ``/fps/v1/upload``, the raw export, its files and ``/_emulator/`` admin paths.

    Options beyond the documented ones: ``request_log_limit`` (keep only the last N
    requests), ``forbidden_api_keys`` (keys answered with 403), ``clock`` (epoch
    seconds, for TTL, export days and link expiry), ``fps_callback_delay`` and
    ``export_delay`` (seconds before the callback/hook), ``fps_max_file_bytes``,
    ``dynamic_segments`` ({segment_id: None or predicate(profile dict)}) and
    ``pii_attributes`` (extra attributes removed by anonymize),
    ``purchase_requires_quantity`` (default ``True``: the parameter table's strict
    reading; ``False``: as a saved example of the reference behaves),
    ``profile_quota`` (profile-read units per minute, default 1,000) and ``tune_gc``
    (apply :func:`tune_gc_for_throughput` to this process when starting: for
    in-process benchmarks; it changes the process-wide GC thresholds).
    """

    def __init__(
        self,
        partner: str = "acme",
        api_key: str = "test-key",
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        event_ttl_days: float = 90,
        rate_limits: Mapping[str, Any] | None = None,
        faults: Mapping[str, Any] | None = None,
        custom_attribute_cap: int = 255,
        custom_identifiers: Iterable[str] = ("loyalty_id", "segment_anonymous_id"),
        request_log_limit: int | None = None,
        forbidden_api_keys: Iterable[str] = (),
        clock: Callable[[], float] = time.time,
        fps_callback_delay: float = 0.0,
        fps_max_file_bytes: int = 10_000_000,
        export_delay: float = 0.0,
        dynamic_segments: Mapping[int, SegmentPredicate] | None = None,
        pii_attributes: Iterable[str] = (),
        purchase_requires_quantity: bool = True,
        profile_quota: float = 1000.0,
        tune_gc: bool = False,
    ) -> None:
        options = EmulatorOptions(
            partner=partner, api_key=api_key, event_ttl_days=event_ttl_days,
            rate_limits=rate_limits, faults=faults, custom_attribute_cap=custom_attribute_cap,
            custom_identifiers=tuple(custom_identifiers), request_log_limit=request_log_limit,
            forbidden_api_keys=tuple(forbidden_api_keys), clock=clock,
            fps_callback_delay=fps_callback_delay, fps_max_file_bytes=fps_max_file_bytes,
            export_delay=export_delay, pii_attributes=tuple(pii_attributes),
            purchase_requires_quantity=purchase_requires_quantity, profile_quota=profile_quota)
        if dynamic_segments is not None:
            options.dynamic_segments = dict(dynamic_segments)
        self.host = host
        self.port = port
        self.tune_gc = tune_gc
        self.state = EmulatorState(options)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    @classmethod
    def from_tenant_config(cls, path: str | Path, **overrides: Any) -> Emulator:
        """An emulator with the tenant settings of a JSON/YAML file (see ``tenant.py``)."""
        return cls(**{**load_tenant_config(path), **overrides})

    # -- lifecycle ----------------------------------------------------------------
    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321`` (no trailing slash)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> Emulator:
        """Bind the socket (errors raise here) and serve in a background thread."""
        if self._thread is not None:
            raise RuntimeError("the emulator is already running")
        if self.tune_gc:
            tune_gc_for_throughput()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        sock.listen(512)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        self.state.base_url = self.url
        loop = asyncio.new_event_loop()
        runner = web.AppRunner(create_app(self.state), access_log=None, handle_signals=False)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.SockSite(runner, sock).start())
        self._loop, self._runner = loop, runner
        self._thread = threading.Thread(target=loop.run_forever, name="insider-emulator",
                                         daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, cancel pending callbacks/hooks and close the loop."""
        loop, thread, runner = self._loop, self._thread, self._runner
        if loop is None or thread is None or runner is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(runner), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
        self._loop = self._thread = self._runner = None

    async def _shutdown(self, runner: web.AppRunner) -> None:
        tasks = list(self.state.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await runner.cleanup()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Block until every pending FPS callback and export hook has run."""
        loop = self._loop
        if loop is None:
            return

        async def drain() -> None:
            while self.state.tasks:
                await asyncio.gather(*list(self.state.tasks), return_exceptions=True)

        asyncio.run_coroutine_threadsafe(drain(), loop).result(timeout=timeout)

    # -- inspection (mirrors /_emulator/) -------------------------------------
    def profile(self, *, uuid: str | None = None, email: str | None = None,
                phone_number: str | None = None, insider_id: str | None = None,
                custom: Mapping[str, str] | None = None, **custom_identifiers: str
                ) -> dict[str, Any] | None:
        """The profile matching every identifier given, or ``None``.

        ``emu.profile(uuid="u1")``, ``emu.profile(custom={"loyalty_id": "L9"})`` or,
        for a configured custom identifier, ``emu.profile(loyalty_id="L9")``.
        """
        criteria = [(k, v) for k, v in (("uuid", uuid), ("email", email),
                                        ("phone_number", phone_number),
                                        ("insider_id", insider_id)) if v is not None]
        merged = {**(custom or {}), **custom_identifiers}
        for name, value in merged.items():
            if name not in self.state.options.custom_identifiers:
                raise TypeError(f"{name} is not a configured custom identifier")
            criteria.append(("custom." + name, value))
        if not criteria:
            raise TypeError("give at least one identifier, e.g. emu.profile(uuid='u1')")
        return self.state.lookup(criteria)

    def profiles(self) -> list[dict[str, Any]]:
        """Every profile in the documented inspection shape."""
        return self.state.profiles()

    def counts(self) -> dict[str, Any]:
        """users, events, events_dropped_ttl, rows, requests/statuses per endpoint..."""
        return self.state.counts()

    def requests(self) -> list[dict[str, Any]]:
        """The request log: method, path, endpoint, status, body, response, time."""
        return self.state.request_log()

    def segments(self) -> list[dict[str, Any]]:
        """First-party segments received and their processing results."""
        return self.state.segment_list()

    def exports(self) -> list[dict[str, Any]]:
        """Raw exports produced."""
        return self.state.export_list()

    def add_profile(self, insider_id: str, identifiers: Mapping[str, Any] | None = None,
                    attributes: Mapping[str, Any] | None = None) -> None:
        """Create a profile with a given insider_id (tenant data that exists before a test).

        ``identifiers`` as in an upsert (``{"email": ..., "custom": {...}}``);
        ``attributes`` default ones at the root, custom ones under ``custom``.
        """
        with self.state.lock:
            self.state.store.add_profile(insider_id, dict(identifiers or {}),
                                         dict(attributes or {}))

    def drift(self, action: str, **body: Any) -> dict[str, Any]:
        """Apply one drift change (``POST /_emulator/drift``, see ``drift.py``) in-process.

        ``emu.drift("set_attributes", user={"uuid": "u1"}, attributes={"city": "X"})``;
        raises ``drift.DriftError`` when it cannot be applied.
        """
        from .drift import apply

        return apply(self.state, {"action": action, **body})

    def reset(self) -> None:
        """Forget all profiles, logs, counters, segments, exports (options stay)."""
        self.state.reset()

    def set_faults(self, faults: Mapping[str, Any] | None = None, **options: Any) -> None:
        """Replace the fault configuration (see ``faults.py``); empty disables faults."""
        raw = {**(faults or {}), **options}
        with self.state.lock:
            self.state.faults.configure(raw)

    def add_dynamic_segment(self, segment_id: int, predicate: SegmentPredicate = None) -> None:
        """Declare a dynamic segment for the raw export (``None``: every profile)."""
        with self.state.lock:
            self.state.dynamic_segments[segment_id] = predicate

    def advance_clock(self, seconds: float) -> None:
        """Move the emulator's clock forward (TTL, export days, link expiry)."""
        with self.state.lock:
            self.state.clock_offset += seconds


def serve(host: str = "127.0.0.1", port: int = 8787, partner: str = "acme",
          api_key: str = "test-key", **options: Any) -> None:
    """Serve the emulator until interrupted; prints one "listening on ..." line.

    The process is the emulator's alone, so its GC is tuned for throughput
    (:func:`tune_gc_for_throughput`) unless ``tune_gc=False`` is passed. A
    long-running server keeps only the last 1,000 requests in its log unless
    ``request_log_limit`` says otherwise (``None``: unbounded).
    """
    options.setdefault("tune_gc", True)
    options.setdefault("request_log_limit", 1000)
    emu = Emulator(partner, api_key, host, port, **options).start()
    print(f"reverse-etl emulator listening on {emu.url} (partner {partner!r}; "
          f"UCD /api/..., FPS /fps/v1/upload, admin /_emulator/)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        emu.stop()


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m reverse_etl.insider.emulator [--host H] [--port P] [--partner N --api-key K]``."""
    parser = argparse.ArgumentParser(prog="python -m reverse_etl.insider.emulator",
                                     description="Local Insider One API emulator.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8787)
    parser.add_argument("--partner", default="acme")
    parser.add_argument("--api-key", default="test-key")
    parser.add_argument("--request-log-limit", type=int, default=1000,
                        help="requests kept in the inspection log (default 1000)")
    parser.add_argument("--tenant-config", default=None,
                        help="JSON/YAML file of tenant settings (custom identifiers, PII "
                             "attributes, forbidden keys, event TTL, rate limits, ...)")
    args = parser.parse_args(argv)
    try:
        tenant = load_tenant_config(args.tenant_config) if args.tenant_config else {}
        tenant.setdefault("partner", args.partner)
        tenant.setdefault("api_key", args.api_key)
        serve(args.host, args.port, request_log_limit=args.request_log_limit, **tenant)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from exc
