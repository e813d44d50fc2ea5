"""The Insider delivery client: concurrent, rate-limited, retried, nothing lost.

:class:`InsiderClient.deliver` is synchronous for callers; inside it runs its
own asyncio loop with one ``httpx.AsyncClient`` (keep-alive, ``concurrency``
connections). Batches are packed lazily from the caller's chunks: a queue of
``concurrency`` idle lanes admits at most that many requests (including their
retry sleeps), and at most ``PREFETCH_DEPTH`` more batches are built ahead of
them, so memory stays bounded however large the input. Each request ends in exactly one final outcome reported to
``on_result``; attempts that will be retried are never reported.

Two helper threads keep blocking work off the loop: the prefetch thread packs
batches (the caller's DuckDB reads, the joins) a few ahead of the lanes, and
the reporting thread runs ``on_result`` (the journal's fsync) in order. A lane
stays taken until its request's outcome is reported, so no more than
``concurrency`` answered requests are ever unjournaled.

A request that appends (see ``verify``) whose answer is lost after it was sent
is never resent blindly: its users are read back and only what Insider lacks
is sent again. Failures before the request left (connect errors) and 429/5xx
answers are retried as usual.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from typing import Any, TypeVar

import httpx
import orjson
from aiolimiter import AsyncLimiter
from tenacity import RetryCallState

from reverse_etl.errors import AuthenticationError, DeliveryError
from reverse_etl.insider.config import InsiderDestinationConfig
from reverse_etl.insider.http.batching import Batch, Oversize, build_body, pack
from reverse_etl.insider.http.endpoints import Endpoint, build_limiters
from reverse_etl.insider.http.prefetch import prefetched
from reverse_etl.insider.http.responses import (
    Kind,
    Verdict,
    judge,
    profile_read_answer,
    shorten,
)
from reverse_etl.insider.http.results import BatchResult, DeliveryStats
from reverse_etl.insider.http.retrying import AmbiguousError, RetryableError, make_retrying
from reverse_etl.insider.http.tls import lane_context, proxy_in_environment
from reverse_etl.insider.http.useragent import USER_AGENT
from reverse_etl.insider.http.verify import batch_appends, verify

log = logging.getLogger("reverse_etl.insider.http")

Chunks = Iterable[tuple[Sequence[int], Sequence[str | bytes]]]
T = TypeVar("T")

PREFETCH_DEPTH = 4
"""Batches packed ahead of the lanes (each at most ``max_batch_bytes``)."""


class InsiderClient:
    """Sends encoded user objects to Insider's user endpoints.

    ``transport`` replaces httpx's network transport (tests, proxies).
    ``wait_base``/``wait_max`` shape the exponential backoff between retries
    (seconds); ``retry_after_cap`` bounds how long a ``Retry-After`` may park
    a request. The API key is only ever placed in request headers.
    """

    def __init__(
        self,
        config: InsiderDestinationConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        wait_base: float = 0.5,
        wait_max: float = 30.0,
        retry_after_cap: float = 120.0,
    ) -> None:
        self.config = config
        self._transport = transport
        # Lane -> the transport its requests are handed to directly (see _open_lanes).
        self._direct: weakref.WeakKeyDictionary[httpx.AsyncClient, httpx.AsyncBaseTransport] = (
            weakref.WeakKeyDictionary())
        self.wait_base = wait_base
        self.wait_max = wait_max
        self.retry_after_cap = retry_after_cap

    def __repr__(self) -> str:
        return f"InsiderClient(partner={self.config.partner!r}, url={self.config.api_base_url!r})"

    def deliver(
        self,
        endpoint: Endpoint,
        chunks: Chunks,
        *,
        on_result: Callable[[BatchResult], None],
        skip_hook: bool = False,
        halt_on_reject: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> DeliveryStats:
        """Send every item of ``chunks`` to ``endpoint``; block until all are settled.

        ``chunks`` yields ``(row_ids, items)``; items are JSON texts of single
        user objects (bulk endpoints) or of whole request bodies (the others).
        ``on_result`` receives each request's final :class:`BatchResult`, one
        at a time and in order, on the delivery's reporting thread (the loop
        goes on sending meanwhile); when it returns, ``progress(n)`` follows
        on the loop with the number of rows it settled. Every result is
        reported before this returns. ``skip_hook`` adds ``"skip_hook": true``
        to upsert bodies (the only ones documented to take it). ``halt_on_reject`` stops sending after the first
        rejected row (in-flight requests still finish and are reported).

        Raises :class:`AuthenticationError` on 401/403 (in-flight work is
        cancelled; rows not yet reported were not settled) and
        :class:`DeliveryError` when the endpoint itself is unusable.
        """
        return _run_sync(lambda: self.deliver_async(
            endpoint, chunks, on_result=on_result, skip_hook=skip_hook,
            halt_on_reject=halt_on_reject, progress=progress))

    async def deliver_async(
        self,
        endpoint: Endpoint,
        chunks: Chunks,
        *,
        on_result: Callable[[BatchResult], None],
        skip_hook: bool = False,
        halt_on_reject: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> DeliveryStats:
        """:meth:`deliver` for callers already inside an event loop."""
        run = _Run(
            self,
            endpoint,
            on_result=on_result,
            skip_hook=skip_hook,
            halt_on_reject=halt_on_reject,
            progress=progress,
        )
        return await run.execute(chunks)

    async def _post(self, lane: httpx.AsyncClient, method: str, path: str, body: bytes) -> httpx.Response:
        """Send one request on ``lane`` and read its whole answer."""
        transport = self._direct.get(lane)
        if transport is None:
            return await lane.request(method, path, content=body)
        response = await transport.handle_async_request(lane.build_request(method, path, content=body))
        try:
            await response.aread()
        finally:
            await response.aclose()
        return response

    async def _open_lanes(self, stack: AsyncExitStack) -> list[httpx.AsyncClient]:
        """``concurrency`` lanes: HTTP clients, each keeping one connection alive.

        One client with a ``concurrency``-connection pool would do, but
        httpcore's pool rescans every connection for every waiting request on
        each event, which measured 3-5x slower at 32 connections. One
        connection per client keeps that scan trivial. An injected transport
        is shared by a single client (its lane is reused ``concurrency`` times).
        """
        config = self.config
        headers = {
            "X-PARTNER-NAME": config.partner,
            "X-REQUEST-TOKEN": config.api_key.get_secret_value(),
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
        }

        # One context for every lane, built once per process (see tls).
        tls = lane_context(config.api_base_url)

        # Requests go straight to the lane's transport (built by the client's own
        # build_request: base URL, headers, timeout). The client's layers above it
        # (auth, redirects, cookies), none of which Insider uses, cost ~10% of a
        # delivery's CPU at 1,000 requests. Not when a proxy is set in the environment:
        # the client routes those, so they keep the client's full path.
        direct = self._transport is not None or not proxy_in_environment()

        def new_client(limits: httpx.Limits) -> httpx.AsyncClient:
            transport = self._transport
            if transport is None and direct:
                transport = httpx.AsyncHTTPTransport(verify=tls, limits=limits)
            client = httpx.AsyncClient(
                verify=tls,
                base_url=config.api_base_url,
                headers=headers,
                timeout=httpx.Timeout(config.timeout_seconds),
                limits=limits,
                transport=transport,
                follow_redirects=False,
            )
            if direct and transport is not None:
                self._direct[client] = transport
            return client

        if self._transport is not None:
            shared = await stack.enter_async_context(new_client(httpx.Limits()))
            return [shared] * config.concurrency
        one = httpx.Limits(max_connections=1, max_keepalive_connections=1, keepalive_expiry=30.0)
        return [await stack.enter_async_context(new_client(one)) for _ in range(config.concurrency)]


def _run_sync(factory: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        return await factory()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    # Called from inside a running loop (a notebook, an async orchestrator):
    # asyncio.run would refuse, so run our own loop on a helper thread.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="reverse-etl-deliver") as pool:
        return pool.submit(asyncio.run, main()).result()


def _first_error(group: BaseExceptionGroup[Any]) -> BaseException:
    """The error to surface from a task group: credentials first, then anything else."""
    errors: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                walk(inner)
        else:
            errors.append(exc)

    walk(group)
    for error in errors:
        if isinstance(error, AuthenticationError):
            return error
    for error in errors:
        if not isinstance(error, asyncio.CancelledError):
            return error
    return errors[0]


_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.LocalProtocolError,
             httpx.ProxyError)
"""Transport failures that happen before a request leaves: retrying cannot apply it twice."""


class _Unreadable(Exception):
    """A profile read answered something that says nothing about the profile (not retried)."""


class _Run:
    """The state of one delivery: slots, limiter, stats, halt flag."""

    def __init__(
        self,
        client: InsiderClient,
        endpoint: Endpoint,
        *,
        on_result: Callable[[BatchResult], None],
        skip_hook: bool,
        halt_on_reject: bool,
        progress: Callable[[int], None] | None,
    ) -> None:
        self.client = client
        self.config = client.config
        self.endpoint = endpoint
        self.on_result = on_result
        # insider-api.md documents skip_hook for upsert only (§1); other bodies stay bare.
        self.skip_hook = skip_hook and endpoint is Endpoint.UPSERT
        self.halt_on_reject = halt_on_reject
        self.progress = progress
        self.stats = DeliveryStats()
        self._secret = self.config.api_key.get_secret_value()
        # Created inside the loop by execute(): asyncio primitives bind to it.
        # A request needs an idle lane; the queue of idle lanes is the slot count.
        self._idle: asyncio.Queue[httpx.AsyncClient]
        self._limiter: AsyncLimiter
        self._tasks: asyncio.TaskGroup
        self._reporter: ThreadPoolExecutor

    # ------------------------------------------------------------------ driving
    async def execute(self, chunks: Chunks) -> DeliveryStats:
        started = time.perf_counter()
        self._idle = asyncio.Queue()
        limiters = build_limiters(self.config.rate_limits)
        self._limiter = limiters[self.endpoint.family]
        self._read_limiter = limiters[Endpoint.PROFILE_READ.family]
        self._reporter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reverse-etl-report")
        try:
            async with (AsyncExitStack() as stack, asyncio.TaskGroup() as tasks,
                        prefetched(self._units(chunks), PREFETCH_DEPTH) as units):
                for lane in await self.client._open_lanes(stack):
                    self._idle.put_nowait(lane)
                self._tasks = tasks
                async for unit, appending in units:
                    if self.stats.halted:
                        break
                    if isinstance(unit, Oversize):
                        await self._settle(
                            BatchResult(self.endpoint, rejected={unit.row_id: unit.reason})
                        )
                        continue
                    # Take a lane before pulling the next batch: bounded memory.
                    lane = await self._idle.get()
                    tasks.create_task(self._send(unit, lane, appending))
        except BaseExceptionGroup as group:
            raise _first_error(group) from None
        finally:
            # Every answer already settled is reported before delivery returns, even
            # when it stopped early (refused credentials, cancelled).
            self._reporter.shutdown(wait=True)
            self.stats.seconds = time.perf_counter() - started
        return self.stats

    def _units(self, chunks: Chunks) -> Iterator[tuple[Batch | Oversize, bool]]:
        """The batches of ``chunks`` (and oversize rows), each with whether it may append.

        Run on the prefetch thread: the DuckDB reads, the joins and the append
        scans all stay off the event loop.
        """
        upsert = self.endpoint is Endpoint.UPSERT
        batches = pack(
            chunks,
            bulk=self.endpoint.bulk,
            max_users=self.config.max_batch_users,
            max_bytes=self.config.max_batch_bytes,
            skip_hook=self.skip_hook,
        )
        try:
            for unit in batches:
                yield unit, upsert and isinstance(unit, Batch) and batch_appends(unit)
        finally:
            # Close on this thread what was opened on it (a generator's DuckDB cursor).
            batches.close()
            close = getattr(chunks, "close", None)
            if callable(close):
                close()

    async def _admit(self, batch: Batch) -> None:
        """Wait for an idle lane, then send (used for bisected halves)."""
        lane = await self._idle.get()
        await self._send(batch, lane, self.endpoint is Endpoint.UPSERT and batch_appends(batch))

    async def _send(self, batch: Batch, lane: httpx.AsyncClient, appending: bool) -> None:
        """Send one batch on ``lane``; settle it, or split it and let the halves queue.

        ``appending``: whether the batch may append (see ``verify.batch_appends``).
        The lane is held until the batch's outcome is reported (journaled), so at most
        ``concurrency`` requests are ever answered-but-unjournaled: what a crash repeats.
        """
        try:
            if self.stats.halted:
                return  # halted while waiting: leave these rows unreported
            attempted = await self._attempts(batch, lane, appending)
            if attempted is None:
                return
            batch, verdict = attempted
            if verdict.kind is Kind.BISECT and len(batch) > 1:
                if self.stats.halted:
                    return
                left, right = batch.halves()
                log.debug("bisecting a refused request of %d users (%s)", len(batch), verdict.reason)
                self._tasks.create_task(self._admit(left))
                self._tasks.create_task(self._admit(right))
                return
            if self.endpoint is Endpoint.IDENTITY_UPDATE and verdict.kind is Kind.REJECT \
                    and verdict.reason.startswith("HTTP 404"):
                verdict = await self._identity_already_moved(batch, lane, verdict)
            await self._settle(self._result(batch, verdict))
        finally:
            self._idle.put_nowait(lane)

    async def _identity_already_moved(self, batch: Batch, lane: httpx.AsyncClient, verdict: Verdict) -> Verdict:
        """A 404 to an identity update: no user holds the old identifier. If a user holds
        the new one, the update was applied already (this is a resend after a crash or a
        lost answer): acknowledged, not a rejected row. Otherwise the 404 stands."""
        try:
            body = orjson.loads(batch.first())
        except orjson.JSONDecodeError:
            return verdict
        new = body.get("new_identifier") if isinstance(body, dict) else None
        if not isinstance(new, dict) or not new:
            return verdict
        try:
            profile = await self._read_profile(lane, {"identifiers": new, "attributes": sorted(new)})
        except RetryableError:
            return verdict  # cannot tell: the rejection stands, the row is retried next run
        if profile is None:
            return verdict
        return Verdict(Kind.ACK, note="identifier already updated: no user holds the old one, "
                                      "a user holds the new one")

    async def _attempts(self, batch: Batch, lane: httpx.AsyncClient,
                        appending: bool) -> tuple[Batch, Verdict] | None:
        """Run the request through the retry policy: (what was sent last, its verdict), or
        None once it has been settled (failed, or every user verified as applied).

        An appending request that fails ambiguously is not retried by the policy: its
        users are read back (after ``verify_delay_seconds``), those Insider already holds
        are acknowledged, and only the rest of each user is sent again.
        """
        rounds = 0
        while True:
            body = build_body(batch, bulk=self.endpoint.bulk, skip_hook=self.skip_hook)
            retrying = make_retrying(
                max_retries=self.config.max_retries,
                wait_base=self.client.wait_base,
                wait_max=self.client.wait_max,
                retry_after_cap=self.client.retry_after_cap,
                on_retry=self._on_retry,
                retry_ambiguous=not appending,
            )
            try:
                verdict: Verdict = await retrying(self._attempt, lane, body, len(batch))
            except AmbiguousError as error:
                if not appending or rounds >= self.config.max_retries:
                    await self._give_up(batch, error, verified=appending)
                    return None
                rounds += 1
                self.stats.retries += 1
                log.info("the answer to %d users was lost (%s); reading them back before resending",
                         len(batch), error.reason)
                await asyncio.sleep(self.config.verify_delay_seconds)
                try:
                    found = await verify(batch, lambda read: self._read_profile(lane, read))
                except RetryableError as unreadable:
                    await self._give_up(batch, error, verified=True, unreadable=unreadable.reason)
                    return None
                if found.applied:
                    await self._settle(BatchResult(self.endpoint, acked=found.applied))
                if not found.rest.row_ids:
                    return None
                batch = found.rest
                appending = batch_appends(batch)
                continue
            except RetryableError as error:
                await self._give_up(batch, error)
                return None
            return batch, verdict

    async def _give_up(self, batch: Batch, error: RetryableError, *, verified: bool = False,
                       unreadable: str | None = None) -> None:
        """Settle ``batch`` as failed (the next run sends it again)."""
        if unreadable is not None:
            reason = (f"answer lost ({error.reason}) and the profiles could not be read back "
                      f"({unreadable}): not resent in this run")
        elif verified:
            reason = f"answer lost {self.config.max_retries + 1} times, last: {error.reason}"
        else:
            reason = f"gave up after {self.config.max_retries} retries: {error.reason}"
        await self._settle(BatchResult(self.endpoint, failed=dict.fromkeys(batch.row_ids, reason)))

    async def _read_profile(self, lane: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any] | None:
        """One profile read (retried on 429/5xx/no answer): the answer, or None for no such user."""
        payload = orjson.dumps(body)
        cost = 1.0 + 0.5 * len(body.get("events", {}).get("wanted", ()))

        async def attempt() -> dict[str, Any] | None:
            await self._read_limiter.acquire(min(cost, self._read_limiter.max_rate))
            endpoint = Endpoint.PROFILE_READ
            try:
                response = await lane.request(endpoint.method, endpoint.path, content=payload)
            except httpx.TransportError as error:
                raise RetryableError(self._redact(f"profile read: {type(error).__name__}")) from None
            # Anything but a profile, a 404 or a retryable answer cannot tell what Insider
            # holds: stop retrying, report it.
            return profile_read_answer(response, lambda line: _Unreadable(self._redact(line)))

        retrying = make_retrying(max_retries=self.config.max_retries, wait_base=self.client.wait_base,
                                 wait_max=self.client.wait_max, retry_after_cap=self.client.retry_after_cap)
        try:
            result: dict[str, Any] | None = await retrying(attempt)
        except _Unreadable as error:
            raise RetryableError(str(error)) from None
        return result

    async def _attempt(self, lane: httpx.AsyncClient, body: bytes, n_users: int) -> Verdict:
        """One HTTP attempt: wait for the rate limiter, send, judge the answer."""
        waiting = time.perf_counter()
        await self._limiter.acquire()
        sent = time.perf_counter()
        self.stats.rate_limit_wait_seconds += sent - waiting
        self.stats.requests += 1
        self.stats.bytes_sent += len(body)
        try:
            response = await self.client._post(lane, self.endpoint.method, self.endpoint.path, body)
            self.stats.request_seconds.append(time.perf_counter() - sent)
        except httpx.TimeoutException as error:
            self.stats.request_seconds.append(time.perf_counter() - sent)
            self.stats.count_status(0)
            # A connect or pool timeout: nothing left. A read/write timeout: maybe applied.
            kind = RetryableError if isinstance(error, _NOT_SENT) else AmbiguousError
            raise kind(
                f"no answer within {self.config.timeout_seconds:g}s ({type(error).__name__})"
            ) from None
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as error:
            raise DeliveryError(
                f"cannot reach Insider at {self.config.api_base_url!r} ({error}): "
                "check destination.api_base_url"
            ) from None
        except httpx.TransportError as error:
            self.stats.count_status(0)
            kind = RetryableError if isinstance(error, _NOT_SENT) else AmbiguousError
            raise kind(
                self._redact(f"connection problem: {type(error).__name__}: {error}")
            ) from None
        self.stats.count_status(response.status_code)
        verdict = judge(
            self.endpoint,
            response.status_code,
            response.content,
            n_users,
            response.headers.get("Retry-After"),
        )
        if verdict.kind is Kind.RETRY:
            raise RetryableError(self._redact(verdict.reason), verdict.retry_after)
        if verdict.kind is Kind.AUTH:
            raise AuthenticationError(self._redact(verdict.reason))
        if verdict.kind is Kind.FATAL:
            raise DeliveryError(self._redact(verdict.reason))
        return verdict

    def _on_retry(self, state: RetryCallState) -> None:
        self.stats.retries += 1
        outcome = state.outcome
        error = outcome.exception() if outcome is not None else None
        sleep = state.next_action.sleep if state.next_action is not None else 0.0
        if isinstance(error, RetryableError) and error.retry_after is not None:
            self.stats.rate_limit_wait_seconds += sleep  # Insider said when to come back (429)
        log.info(
            "retrying %s in %.2fs (attempt %d): %s",
            self.endpoint.path,
            sleep,
            state.attempt_number,
            error,
        )

    # ---------------------------------------------------------------- settling
    def _result(self, batch: Batch, verdict: Verdict) -> BatchResult:
        result = BatchResult(self.endpoint)
        if verdict.kind is Kind.ACK:
            result.acked = list(batch.row_ids)
            if verdict.note:
                result.notes = dict.fromkeys(batch.row_ids, verdict.note)
        elif verdict.kind is Kind.PARTIAL:
            for index, row_id in enumerate(batch.row_ids):
                reason = verdict.rejected.get(index)
                if reason is None:
                    result.acked.append(row_id)
                else:
                    result.rejected[row_id] = self._redact(reason)
        else:  # REJECT, or BISECT down to a single row
            result.rejected = dict.fromkeys(batch.row_ids, self._redact(verdict.reason))
        return result

    async def _settle(self, result: BatchResult) -> None:
        """Report one final outcome: stats and halt at once, then the callback (on the
        reporting thread), then progress."""
        self.stats.add(result)
        if result.rejected and self.halt_on_reject and not self.stats.halted:
            row_id, reason = next(iter(result.rejected.items()))
            self.stats.halted = True
            self.stats.halt_reason = shorten(f"row {row_id} was rejected: {reason}")
        # on_result writes and fsyncs the journal (with an object-store state, a PUT too):
        # on the one reporting thread, in order, while the loop goes on with other lanes.
        # Shielded: a cancelled delivery still lets the report finish (execute's
        # shutdown of the reporter waits for it), so no settled answer goes unjournaled.
        reported = asyncio.get_running_loop().run_in_executor(self._reporter, self.on_result, result)
        await asyncio.shield(reported)
        if self.progress is not None:
            self.progress(result.rows)

    def _redact(self, text: str) -> str:
        # Belt and braces: an echoing proxy must not smuggle the key into a reason.
        return text.replace(self._secret, "***") if self._secret else text
