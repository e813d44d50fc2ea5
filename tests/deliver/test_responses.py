"""Reading Insider's answers: fail maps, statuses, Retry-After."""

from __future__ import annotations

import orjson
import pytest

from reverse_etl.insider.http import Endpoint
from reverse_etl.insider.http.responses import Kind, judge, parse_fail_map, parse_retry_after


def _ok(fail: object) -> bytes:
    return orjson.dumps({"data": {"successful": {"count": 1}, "fail": fail}})


def test_fail_map_keys_map_to_request_indices() -> None:
    fail = {
        "count": 2,
        "errors": {
            "users.3.identifiers.*.regexp(^.+@.+\\..+$)": ["not a valid email address: x"],
            "users.0.attributes.age": ["must be a number", "too old"],
            "users.3.attributes.birthday": ["not RFC3339"],
        },
    }
    verdict = judge(Endpoint.UPSERT, 200, _ok(fail), 5)
    assert verdict.kind is Kind.PARTIAL
    assert verdict.rejected == {
        3: "identifiers.*.regexp(^.+@.+\\..+$): not a valid email address: x"
        " | attributes.birthday: not RFC3339",
        0: "attributes.age: must be a number; too old",
    }


@pytest.mark.parametrize(
    "errors",
    [
        {"users.9.attributes.age": ["x"]},  # index outside the request
        {"attributes.age": ["x"]},  # no users.<i>
        {"users.1.a": ["x"], "something": ["y"]},  # one unmappable key spoils the map
    ],
)
def test_unmappable_fail_map_rejects_whole_batch(errors: dict[str, list[str]]) -> None:
    verdict = judge(Endpoint.UPSERT, 200, _ok({"count": 1, "errors": errors}), 3)
    assert verdict.kind is Kind.REJECT
    assert "did not tie to users" in verdict.reason


def test_fail_count_without_errors_is_not_acked() -> None:
    assert judge(Endpoint.UPSERT, 200, _ok({"count": 2}), 3).kind is Kind.REJECT
    assert parse_fail_map({"count": 2}, 3) is None


def test_clean_200_acks() -> None:
    assert judge(Endpoint.UPSERT, 200, _ok({}), 3).kind is Kind.ACK
    assert judge(Endpoint.USER_DELETE, 200, b"{}", 1).kind is Kind.ACK


def test_unreadable_200_on_bulk_is_rejected() -> None:
    verdict = judge(Endpoint.UPSERT, 200, b"<html>proxy</html>", 3)
    assert verdict.kind is Kind.REJECT and "unreadable" in verdict.reason


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504, 520])
def test_transient_statuses_retry(status: int) -> None:
    verdict = judge(Endpoint.UPSERT, status, b'{"error":"busy"}', 3, "7")
    assert verdict.kind is Kind.RETRY and verdict.retry_after == 7.0


def test_auth_statuses() -> None:
    for status in (401, 403):
        verdict = judge(Endpoint.UPSERT, status, b'{"success":false,"message":"nope"}', 1)
        assert verdict.kind is Kind.AUTH
        assert "destination.api_key" in verdict.reason
    partner = judge(Endpoint.UPSERT, 400, b'{"success":false,"message":"Partner is invalid."}', 9)
    assert partner.kind is Kind.AUTH and "destination.partner" in partner.reason


def test_400_bisects_bulk_and_rejects_single() -> None:
    body = b'{"error":"users must be defined: bad request"}'
    assert judge(Endpoint.UPSERT, 400, body, 10).kind is Kind.BISECT
    assert judge(Endpoint.ATTRIBUTE_DELETE, 413, b"too big", 10).kind is Kind.BISECT
    single = judge(
        Endpoint.IDENTITY_DELETE,
        400,
        b'{"error":"you cannot delete the sole identifier specified for a user: bad request"}',
        1,
    )
    assert single.kind is Kind.REJECT
    assert single.reason == (
        "HTTP 400: you cannot delete the sole identifier specified for a user: bad request"
    )


def test_404() -> None:
    gone = b'{"error":"no such user for these identifiers: no data"}'
    anonymize = judge(Endpoint.ANONYMIZE, 404, gone, 1)
    assert anonymize.kind is Kind.ACK and anonymize.note and "not found" in anonymize.note
    # Deleting a user or identifier Insider does not know leaves the wanted state: done.
    assert judge(Endpoint.USER_DELETE, 404, gone, 1).kind is Kind.ACK
    assert judge(Endpoint.IDENTITY_DELETE, 404, gone, 1).kind is Kind.ACK
    assert judge(Endpoint.IDENTITY_UPDATE, 404, gone, 1).kind is Kind.REJECT
    assert judge(Endpoint.UPSERT, 404, b"404 page not found", 5).kind is Kind.FATAL


def test_retry_after_parsing() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


def test_redirects_and_foreign_404s_are_configuration_errors_not_row_verdicts() -> None:
    # A redirect must never turn every row into a rejected (and later held-back) row.
    assert judge(Endpoint.UPSERT, 301, b"", 3).kind is Kind.FATAL
    # A gateway's JSON 404 is not Insider's "no such user": deleting nothing is not "done".
    foreign = judge(Endpoint.USER_DELETE, 404, b'{"message":"Not Found"}', 1)
    assert foreign.kind is Kind.FATAL and "api_base_url" in foreign.reason


def test_a_fail_count_beyond_the_named_users_rejects_the_batch() -> None:
    fail = {"count": 2, "errors": {"users.0.identifiers.*.regexp(x)": ["bad"]}}
    assert judge(Endpoint.UPSERT, 200, _ok(fail), 3).kind is Kind.REJECT
