"""The delivery client against the Insider emulator over real HTTP on 127.0.0.1."""

from __future__ import annotations

import logging
import socket
import time
from collections import Counter
from collections.abc import Iterator

import pytest
from aiolimiter import AsyncLimiter

from reverse_etl.errors import AuthenticationError
from reverse_etl.insider.emulator import Emulator
from reverse_etl.insider.http import Endpoint, InsiderClient
from reverse_etl.insider.http.client import PREFETCH_DEPTH

from .helpers import API_KEY, Collector, client, config, user, user_chunks, uuids_in_ok_requests


def test_100k_upsert_with_30_percent_faults_loses_and_duplicates_nothing() -> None:
    rejected_ids = {17, 4242, 99_999}
    faults = {
        "seed": 11,
        "status_429": 0.1,
        "status_500": 0.05,
        "status_503": 0.05,
        "drop": 0.1,
        "retry_after": 0,
        "reject": [f"u{i}" for i in rejected_ids],
    }
    with Emulator(partner="acme", api_key=API_KEY, port=0, faults=faults) as emu:
        results = Collector()
        progressed: list[int] = []
        stats = client(emu.url, concurrency=8, max_retries=12).deliver(
            Endpoint.UPSERT, user_chunks(100_000), on_result=results, progress=progressed.append
        )
        log = emu.requests()

    # every row settled exactly once, by exactly one final outcome
    settled = results.acked + list(results.rejected) + list(results.failed)
    assert Counter(settled) == Counter(range(100_000))
    assert set(results.rejected) == rejected_ids
    assert all("rejected by emulator fault injection" in r for r in results.rejected.values())
    assert all(reason for reason in results.failed.values())
    assert sum(progressed) == 100_000

    # the emulator saw each settled-as-sent row in exactly one 200-answered request
    seen = Counter(uuids_in_ok_requests(log))
    for row in results.acked + list(results.rejected):
        assert seen[f"u{row}"] == 1, row
    for row in results.failed:
        assert seen[f"u{row}"] == 0, row

    # faults were really injected, and retried
    statuses = Counter(e["status"] for e in log)
    assert statuses[429] and statuses[500] and statuses[503]
    assert any(e["fault"] == "drop" for e in log)
    assert stats.retries >= sum(1 for e in log if e["status"] != 200)
    assert stats.requests == len(log)
    assert stats.rows_acked == len(results.acked) and stats.status_counts[0] > 0
    assert all(len(e["body"]["users"]) <= 1000 for e in log)


def test_retries_exhausted_rows_are_failed_with_reason(insider_emulator: Emulator) -> None:
    insider_emulator.set_faults(script=[503, 503, 503, "drop", "drop", "drop"])
    results = Collector()
    stats = client(insider_emulator.url, concurrency=1, max_retries=2, max_batch_users=10).deliver(
        Endpoint.UPSERT, user_chunks(30), on_result=results
    )
    assert sorted(results.failed) == list(range(20))
    assert all(
        r.startswith("gave up after 2 retries: HTTP 503")
        for r in [results.failed[i] for i in range(10)]
    )
    assert "RemoteProtocolError" in results.failed[10]
    assert results.acked == list(range(20, 30))
    assert stats.rows_failed == 20 and stats.retries == 4


def test_row_failures_in_a_200_map_to_row_ids(insider_emulator: Emulator) -> None:
    insider_emulator.set_faults(reject=["u3", "u1006"])
    items = {i: user(i) for i in range(1500)}
    items[7] = '{"identifiers":{"email":"not-an-email"},"attributes":{"name":"x"}}'
    row_ids = [10_000 + i for i in items]  # row ids are not request positions
    results = Collector()
    stats = client(insider_emulator.url).deliver(
        Endpoint.UPSERT, [(row_ids, list(items.values()))], on_result=results
    )
    assert set(results.rejected) == {10_003, 10_007, 11_006}
    assert results.rejected[10_003].startswith("identifiers.*.rejected: ")
    assert "email" in results.rejected[10_007]
    assert sorted(results.acked) == sorted(set(row_ids) - {10_003, 10_007, 11_006})
    assert stats.requests == 2
    assert insider_emulator.profile(uuid="u3") is None
    assert insider_emulator.profile(uuid="u1499") is not None


def test_whole_batch_400_is_bisected_to_the_bad_rows(insider_emulator: Emulator) -> None:
    items = [user(i) for i in range(64)]
    items[5] = '{"identifiers":{"uuid":"u5"}'  # broken JSON: the whole body is refused
    items[40] = '{"identifiers":{"uuid":"u40"},"attributes":{"name":"x"}}}'
    results = Collector()
    stats = client(insider_emulator.url, concurrency=3).deliver(
        Endpoint.UPSERT, [(list(range(64)), items)], on_result=results
    )
    assert set(results.rejected) == {5, 40}
    assert all("invalid JSON" in r for r in results.rejected.values())
    assert sorted(results.acked) == sorted(set(range(64)) - {5, 40})
    assert stats.status_counts[400] >= 2 and stats.requests < 30
    assert Counter(uuids_in_ok_requests(insider_emulator.requests())) == Counter(
        f"u{i}" for i in range(64) if i not in (5, 40)
    )


@pytest.mark.parametrize(("key", "status"), [("wrong-key", 403), ("forbidden-key", 403)])
def test_refused_credentials_stop_delivery(
    key: str, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    pulled = 0

    def chunks() -> Iterator[tuple[list[int], list[str]]]:
        nonlocal pulled
        for chunk in user_chunks(100_000, size=1000):
            pulled += 1
            yield chunk

    with Emulator(partner="acme", api_key=API_KEY, forbidden_api_keys=["forbidden-key"]) as emu:
        results = Collector()
        c = client(emu.url, api_key=key, concurrency=4)
        with pytest.raises(AuthenticationError) as caught:
            c.deliver(Endpoint.UPSERT, chunks(), on_result=results)
        n_requests = len(emu.requests())
    message = str(caught.value)
    assert f"({status} " in message and "destination.api_key" in message
    assert "\n" not in message
    for text in (message, repr(caught.value), repr(c), caplog.text):
        assert key not in text
    assert results.results == []
    # Stopped at the refusal, not after 100 chunks: no lane sends again (one request
    # each), and the chunks read ahead stay bounded by what the lanes, a batch awaiting
    # a lane, the prefetch queue and the packer hold: 10-14 measured on a loaded
    # machine (12 was the bound before the prefetch queue); twice those places here.
    read_ahead = 2 * (4 + 1 + PREFETCH_DEPTH + 1)
    assert n_requests <= 4 and pulled <= read_ahead, (n_requests, pulled)


def test_unknown_partner_is_an_authentication_error(insider_emulator: Emulator) -> None:
    # Insider's reference answers every authentication error with 403 Access Denied.
    with pytest.raises(AuthenticationError, match=r"403 Access Denied.*destination\.partner"):
        client(insider_emulator.url, partner="other").deliver(
            Endpoint.UPSERT, user_chunks(5), on_result=Collector()
        )


def test_retry_after_is_honoured(insider_emulator: Emulator) -> None:
    insider_emulator.set_faults(script=[429], retry_after=1)
    results = Collector()
    started = time.perf_counter()
    stats = client(insider_emulator.url).deliver(Endpoint.UPSERT, user_chunks(3), on_result=results)
    elapsed = time.perf_counter() - started
    assert elapsed >= 1.0  # the backoff alone would have waited milliseconds
    assert stats.retries == 1 and results.acked == [0, 1, 2]
    assert stats.status_counts == {429: 1, 200: 1}


def test_rate_limiter_bounds_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    # Client budget 600/min: a 10-request bucket draining at (600 - 10) / 60 per second, so
    # at most 20 requests leave in any second. That is counted where the client decides
    # (when the limiter lets a request go), not at the emulator: arrivals on a loaded 2-core
    # machine bunch by a few ms. The emulator enforces 24 per sliding second: no 429.
    released: list[float] = []
    acquire = AsyncLimiter.acquire

    async def timed_acquire(self: AsyncLimiter, amount: float = 1) -> None:
        await acquire(self, amount)
        released.append(time.monotonic())

    monkeypatch.setattr(AsyncLimiter, "acquire", timed_acquire)
    with Emulator(partner="acme", api_key=API_KEY, rate_limits={"upsert": (24, 1.0)}) as emu:
        results = Collector()
        c = client(
            emu.url, concurrency=8, max_batch_users=1, rate_limits={"upsert_per_minute": 600}
        )
        started = time.perf_counter()
        stats = c.deliver(Endpoint.UPSERT, user_chunks(30), on_result=results)
        elapsed = time.perf_counter() - started
    assert len(results.acked) == 30 and stats.requests == 30
    assert 429 not in stats.status_counts
    assert elapsed >= 1.8  # 10 at once, then 20 more at ~10/s
    assert len(released) == 30
    assert max(sum(1 for t in released if t0 <= t < t0 + 1.0) for t0 in released) <= 20


def test_halt_on_reject_stops_sending(insider_emulator: Emulator) -> None:
    insider_emulator.set_faults(reject=["u5"])
    results = Collector()
    stats = client(insider_emulator.url, concurrency=1, max_batch_users=10).deliver(
        Endpoint.UPSERT, user_chunks(1000), on_result=results, halt_on_reject=True
    )
    assert stats.halted and stats.halt_reason and "row 5" in stats.halt_reason
    assert list(results.rejected) == [5]
    assert sorted(results.acked) == [0, 1, 2, 3, 4, 6, 7, 8, 9]
    assert len(insider_emulator.requests()) == 1


def test_skip_hook_and_attribute_delete(insider_emulator: Emulator) -> None:
    results = Collector()
    c = client(insider_emulator.url)
    c.deliver(Endpoint.UPSERT, user_chunks(3), on_result=results, skip_hook=True)
    delete = '{"identifiers":{"uuid":"u1"},"whole":["name"]}'
    c.deliver(Endpoint.ATTRIBUTE_DELETE, [([1], [delete])], on_result=results)
    log = insider_emulator.requests()
    assert log[0]["body"]["skip_hook"] is True and "skip_hook" not in log[1]["body"]
    assert log[1]["path"] == "/api/user/v1/attribute/delete"
    assert sorted(results.acked) == [0, 1, 1, 2]


def test_one_per_request_endpoints(insider_emulator: Emulator) -> None:
    c = client(insider_emulator.url)
    seed = '{"identifiers":{"uuid":"a","email":"a@b.co"},"attributes":{"name":"A"}}'
    c.deliver(
        Endpoint.UPSERT,
        [
            (
                [0],
                [
                    seed,
                ][:1],
            ),
            ([1], [user(1)]),
        ],
        on_result=Collector(),
    )

    results = Collector()
    c.deliver(
        Endpoint.IDENTITY_DELETE,
        [([10, 11], ['{"identifiers":{"email":"a@b.co"}}', '{"identifiers":{"uuid":"u1"}}'])],
        on_result=results,
    )
    assert results.acked == [10]
    assert results.rejected == {
        11: "HTTP 400: you cannot delete the sole identifier specified for a user: bad request"
    }

    results = Collector()
    c.deliver(
        Endpoint.ANONYMIZE,
        [([20, 21], ['{"identifiers":{"uuid":"a"}}', '{"identifiers":{"uuid":"ghost"}}'])],
        on_result=results,
    )
    assert sorted(results.acked) == [20, 21]
    assert list(results.notes) == [21] and "not found" in results.notes[21]

    results = Collector()
    c.deliver(Endpoint.USER_DELETE, [([30], ['{"identifiers":{"uuid":"u1"}}'])], on_result=results)
    assert results.acked == [30] and insider_emulator.profile(uuid="u1") is None
    methods = [(e["method"], e["path"]) for e in insider_emulator.requests()[2:]]
    assert ("DELETE", "/api/user/v1/identity") in methods
    assert ("POST", "/api/user/v1/anonymize") in methods


def test_chunks_are_pulled_lazily(insider_emulator: Emulator) -> None:
    pulled = 0
    pulled_at_first_result: list[int] = []

    def chunks() -> Iterator[tuple[list[int], list[str]]]:
        nonlocal pulled
        for chunk in user_chunks(2000, size=10):
            pulled += 1
            yield chunk

    def on_result(_: object) -> None:
        pulled_at_first_result.append(pulled)

    client(insider_emulator.url, concurrency=2, max_batch_users=10).deliver(
        Endpoint.UPSERT, chunks(), on_result=on_result
    )
    assert pulled == 200
    # Not the whole input: two in flight, one waiting for a lane, the prefetch queue,
    # and the chunk the packer reads ahead to know a batch is complete.
    assert pulled_at_first_result[0] <= 2 + 1 + PREFETCH_DEPTH + 1


def test_injected_transport_is_used(insider_emulator: Emulator) -> None:
    import httpx

    class Counting(httpx.AsyncHTTPTransport):
        calls = 0

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            Counting.calls += 1
            return await super().handle_async_request(request)

    results = Collector()
    c = InsiderClient(config(insider_emulator.url, concurrency=4), transport=Counting())
    stats = c.deliver(Endpoint.UPSERT, user_chunks(5000), on_result=results)
    assert sorted(results.acked) == list(range(5000))
    assert Counting.calls == stats.requests == 5


def test_every_request_names_reverse_etl_in_its_user_agent(insider_emulator: Emulator) -> None:
    client(insider_emulator.url).deliver(Endpoint.UPSERT, user_chunks(3), on_result=Collector())
    agents = {e["headers"]["User-Agent"] for e in insider_emulator.requests()}
    assert len(agents) == 1
    agent = agents.pop()
    assert agent.startswith("reverse_etl/") and agent.endswith(" (+Insider One reverse ETL)")


def test_an_identity_update_resent_after_it_was_applied_is_acknowledged(insider_emulator: Emulator) -> None:
    """After a crash (or a lost answer) the same PATCH goes out again: the old email is
    gone by then, so Insider answers 404. A user holding the new email means the update
    is done; only when nobody holds it does the 404 reject the row."""
    c = client(insider_emulator.url)
    c.deliver(Endpoint.UPSERT, [([0], ['{"identifiers":{"uuid":"u9","email":"old@b.co"},"attributes":{"name":"N"}}'])],
              on_result=Collector())
    move = '{"old_identifier":{"email":"old@b.co"},"new_identifier":{"email":"new@b.co"}}'
    first, again = Collector(), Collector()
    c.deliver(Endpoint.IDENTITY_UPDATE, [([1], [move])], on_result=first)
    c.deliver(Endpoint.IDENTITY_UPDATE, [([1], [move])], on_result=again)
    assert first.acked == [1] and again.acked == [1] and not again.rejected
    assert "already updated" in again.notes[1]
    assert insider_emulator.profile(email="new@b.co") is not None

    nobody = Collector()
    c.deliver(Endpoint.IDENTITY_UPDATE,
              [([2], ['{"old_identifier":{"email":"ghost@b.co"},"new_identifier":{"email":"gone@b.co"}}'])],
              on_result=nobody)
    assert not nobody.acked and nobody.rejected[2].startswith("HTTP 404")


def test_a_proxy_named_in_the_environment_carries_every_request(monkeypatch: pytest.MonkeyPatch) -> None:
    # Insider's address is a closed port: only through the proxy (here the emulator
    # itself, which answers absolute-form requests) can the users arrive.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    with Emulator(partner="acme", api_key=API_KEY, port=0) as emu:
        for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "HTTPS_PROXY", "https_proxy", "http_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", emu.url)
        results = Collector()
        client(f"http://127.0.0.1:{closed}", max_retries=1).deliver(Endpoint.UPSERT, user_chunks(10), on_result=results)
        monkeypatch.delenv("HTTP_PROXY")
        assert sorted(results.acked) == list(range(10)) and not results.failed
        assert emu.profile(uuid="u3")["attributes"]["name"] == "name 3"  # type: ignore[index]
