"""Edge cases the emulator cannot produce, against a scriptable server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket

import orjson
import pytest

from reverse_etl.errors import AuthenticationError, DeliveryError
from reverse_etl.insider.http import Endpoint, InsiderClient

from .fake_insider import Answer, FakeInsider
from .helpers import API_KEY, Collector, client, config, user_chunks


def _json(status: int, payload: object, headers: dict[str, str] | None = None) -> Answer:
    return status, orjson.dumps(payload), headers or {}


def test_malformed_fail_map_rejects_the_whole_batch() -> None:
    answer = _json(
        200,
        {
            "data": {
                "successful": {"count": 2},
                "fail": {"count": 1, "errors": {"user[1].email": ["bad"]}},
            }
        },
    )
    with FakeInsider(lambda m, p, b: answer) as fake:
        results = Collector()
        stats = client(fake.url).deliver(Endpoint.UPSERT, user_chunks(3), on_result=results)
    assert results.acked == []
    assert sorted(results.rejected) == [0, 1, 2]
    assert "user[1].email" in results.rejected[0]
    assert stats.rows_rejected == 3


def test_oversize_400_is_bisected_until_requests_fit() -> None:
    def handler(method: str, path: str, body: bytes) -> Answer:
        if len(body) > 400:
            return _json(
                400, {"error": "request body is bigger than maximum allowed size 5,000,000 bytes"}
            )
        return _json(200, {"data": {"successful": {"count": 1}, "fail": {}}})

    with FakeInsider(handler) as fake:
        results = Collector()
        client(fake.url).deliver(Endpoint.UPSERT, user_chunks(40), on_result=results)
    assert sorted(results.acked) == list(range(40))
    answered = [b for b in fake.bodies if len(b) <= 400]
    assert sum(len(orjson.loads(b)["users"]) for b in answered) == 40
    assert len(fake.bodies) > len(answered)  # there were refused, bisected requests


def test_token_echoed_by_a_proxy_is_redacted() -> None:
    answer = _json(400, {"error": f"bad header X-REQUEST-TOKEN={API_KEY}"})
    with FakeInsider(lambda m, p, b: answer) as fake:
        results = Collector()
        client(fake.url).deliver(
            Endpoint.USER_DELETE, [([1], ['{"identifiers":{"uuid":"a"}}'])], on_result=results
        )
    assert results.rejected == {1: "HTTP 400: bad header X-REQUEST-TOKEN=***"}


def test_auth_error_message_carries_no_token() -> None:
    answer = _json(401, {"success": False, "message": f"token {API_KEY} unknown"})
    with FakeInsider(lambda m, p, b: answer) as fake, pytest.raises(AuthenticationError) as caught:
        client(fake.url).deliver(Endpoint.UPSERT, user_chunks(3), on_result=Collector())
    assert API_KEY not in str(caught.value)


def test_timeouts_end_as_failed_rows() -> None:
    def handler(method: str, path: str, body: bytes) -> Answer:
        import time

        time.sleep(0.3)  # blocks the fake's loop: the client times out first
        return _json(200, {"data": {"successful": {"count": 1}, "fail": {}}})

    with FakeInsider(handler) as fake:
        results = Collector()
        stats = client(fake.url, timeout_seconds=0.05, max_retries=1, concurrency=1).deliver(
            Endpoint.UPSERT, user_chunks(2), on_result=results
        )
    assert sorted(results.failed) == [0, 1]
    assert "no answer within 0.05s" in results.failed[0]
    assert stats.status_counts == {0: 2} and stats.retries == 1


def test_connection_refused_ends_as_failed_rows() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens on this port now
    results = Collector()
    stats = client(f"http://127.0.0.1:{port}", max_retries=2).deliver(
        Endpoint.UPSERT, user_chunks(2), on_result=results
    )
    assert sorted(results.failed) == [0, 1]
    assert "ConnectError" in results.failed[0]
    assert stats.requests == 3


def test_wrong_base_url_path_is_a_delivery_error() -> None:
    answer: Answer = (404, b"404: Not Found", {})
    with (
        FakeInsider(lambda m, p, b: answer) as fake,
        pytest.raises(DeliveryError, match="api_base_url"),
    ):
        client(fake.url).deliver(Endpoint.UPSERT, user_chunks(2), on_result=Collector())


def test_callback_errors_propagate() -> None:
    answer = _json(200, {"data": {"successful": {"count": 1}, "fail": {}}})

    def broken(_: object) -> None:
        raise OSError("journal disk full")

    with FakeInsider(lambda m, p, b: answer) as fake, pytest.raises(OSError, match="disk full"):
        client(fake.url).deliver(Endpoint.UPSERT, user_chunks(2), on_result=broken)


def test_deliver_works_inside_a_running_loop() -> None:
    answer = _json(200, {"data": {"successful": {"count": 1}, "fail": {}}})
    with FakeInsider(lambda m, p, b: answer) as fake:
        c = InsiderClient(config(fake.url))
        results = Collector()

        async def main() -> None:
            c.deliver(Endpoint.UPSERT, user_chunks(2), on_result=results)

        asyncio.run(main())
    assert results.acked == [0, 1]
    assert "test-key" not in repr(c)


def test_headers_and_body_sent() -> None:
    with FakeInsider(lambda m, p, b: _json(200, {})) as fake:
        client(fake.url).deliver(
            Endpoint.USER_DELETE, [([1], ['{"identifiers":{"uuid":"a"}}'])], on_result=Collector()
        )
    assert fake.bodies == [b'{"identifiers":{"uuid":"a"}}']
    headers = fake.headers[0]
    assert headers["X-PARTNER-NAME"] == "acme"
    assert headers["X-REQUEST-TOKEN"] == API_KEY
    assert headers["Content-Type"] == "application/json"
