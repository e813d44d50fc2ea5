"""Requests whose answer is lost: appending ones are read back, never blindly resent."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from reverse_etl.insider.emulator import Emulator
from reverse_etl.insider.http import Endpoint
from reverse_etl.insider.http.verify import appends, residual

from .helpers import API_KEY, Collector, client

UPSERT = "/api/user/v1/upsert"
PROFILE = "/api/user/v1/profile"


def item(uuid: str, **attributes: Any) -> str:
    return orjson.dumps({"identifiers": {"uuid": uuid}, "attributes": attributes}).decode()


def test_classification_and_residual() -> None:
    assert appends(b'{"identifiers":{"uuid":"a"},"attributes":{"custom":{"t":["x"]}}}')
    assert appends(b'{"identifiers":{"uuid":"a"},"events":[{"event_name":"e"}]}')
    assert not appends(b'{"identifiers":{"uuid":"a"},"attributes":{"custom":{"t":["x"]}},"not_append":true}')
    assert not appends(b'{"identifiers":{"uuid":"a"},"attributes":{"name":"A"}}')
    user = {"identifiers": {"uuid": "a"}, "attributes": {"name": "A", "custom": {"t": ["x", "y"], "n": 1}},
            "events": [{"event_name": "e", "timestamp": "2026-01-01T00:00:00Z"},
                       {"event_name": "e", "timestamp": "2026-01-01T00:00:01Z"}]}
    answer = {"attributes": {"name": "A", "c_t": ["x"], "c_n": 2},
              "events": {"e": [{"created_date": "2026-01-01T00:00:00Z", "source": "api"}]}}
    assert residual(user, answer) == {
        "identifiers": {"uuid": "a"}, "attributes": {"custom": {"t": ["y"], "n": 1}},
        "events": [{"event_name": "e", "timestamp": "2026-01-01T00:00:01Z"}]}
    assert user["attributes"]["custom"]["t"] == ["x", "y"]  # the caller's object is untouched
    held = {"attributes": {"name": "A", "c_t": ["y", "x"], "c_n": 1},
            "events": {"e": [{"created_date": t} for t in ("2026-01-01T00:00:00Z", "2026-01-01T00:00:01Z")]}}
    assert residual(user, held) is None
    assert residual(user, None) is user  # no such user: nothing was applied


@pytest.mark.parametrize("script", [["lost"], ["drop"], ["lost", "lost"], ["drop", "lost", "ok"]])
def test_an_appending_upsert_is_verified_then_sent_only_where_missing(script: list[str]) -> None:
    with Emulator(partner="acme", api_key=API_KEY) as emu:
        emu.set_faults(script=script, endpoints=["upsert"])
        results = Collector()
        items = [item("a", name="A", custom={"tags": ["x"]}), item("b", custom={"tags": ["y", "z"]})]
        stats = client(emu.url, concurrency=1, verify_delay_seconds=0).deliver(
            Endpoint.UPSERT, [([0, 1], items)], on_result=results)
        assert sorted(results.acked) == [0, 1] and not results.failed
        assert emu.profile(uuid="a")["attributes"]["custom"]["tags"] == ["x"]  # type: ignore[index]
        assert emu.profile(uuid="b")["attributes"]["custom"]["tags"] == ["y", "z"]  # type: ignore[index]
        log = emu.requests()
        applied = [e for e in log if e["path"] == UPSERT and e["fault"] != "drop"]
        reads = [e for e in log if e["path"] == PROFILE]
        assert reads and len(applied) == 1  # never resent: the one applied request was found
        assert stats.retries >= 1


def test_a_dropped_request_is_resent_after_the_read_finds_nothing() -> None:
    with Emulator(partner="acme", api_key=API_KEY) as emu:
        emu.set_faults(script=["drop"], endpoints=["upsert"])
        results = Collector()
        client(emu.url, verify_delay_seconds=0).deliver(
            Endpoint.UPSERT, [([7], [item("a", custom={"tags": ["x"]})])], on_result=results)
        assert results.acked == [7]
        reads = [e for e in emu.requests() if e["path"] == PROFILE]
        assert [e["status"] for e in reads] == [404]
        assert emu.profile(uuid="a")["attributes"]["custom"]["tags"] == ["x"]  # type: ignore[index]


def test_an_idempotent_upsert_is_retried_blindly() -> None:
    with Emulator(partner="acme", api_key=API_KEY) as emu:
        emu.set_faults(script=["lost"], endpoints=["upsert"])
        results = Collector()
        body = orjson.dumps({"identifiers": {"uuid": "a"}, "attributes": {"custom": {"tags": ["x"]}},
                             "not_append": True}).decode()
        client(emu.url, verify_delay_seconds=0).deliver(Endpoint.UPSERT, [([0], [body])], on_result=results)
        assert results.acked == [0]
        log = emu.requests()
        assert [e["fault"] for e in log if e["path"] == UPSERT] == ["lost_answer", None]
        assert not [e for e in log if e["path"] == PROFILE]
        assert emu.profile(uuid="a")["attributes"]["custom"]["tags"] == ["x"]  # type: ignore[index]


def test_unreadable_profiles_fail_the_rows_without_resending() -> None:
    with Emulator(partner="acme", api_key=API_KEY) as emu:
        emu.set_faults(script=["lost", 500, 500, 500], endpoints=["upsert", "profile"])
        results = Collector()
        client(emu.url, verify_delay_seconds=0, max_retries=1).deliver(
            Endpoint.UPSERT, [([0], [item("a", custom={"tags": ["x"]})])], on_result=results)
        assert list(results.failed) == [0] and "could not be read back" in results.failed[0]
        assert len([e for e in emu.requests() if e["path"] == UPSERT]) == 1  # not resent
        assert emu.profile(uuid="a")["attributes"]["custom"]["tags"] == ["x"]  # type: ignore[index]


def test_the_lost_answer_fault_is_validated() -> None:
    with Emulator(partner="acme", api_key=API_KEY) as emu:
        with pytest.raises(ValueError, match="lost_answer"):
            emu.set_faults(lost_answer=2)
        emu.set_faults(lost_answer=0.5, drop=0.5)
        assert emu.state.faults.config.to_dict()["lost_answer"] == 0.5
        with pytest.raises(ValueError, match="add up"):
            emu.set_faults(lost_answer=0.6, drop=0.5)
