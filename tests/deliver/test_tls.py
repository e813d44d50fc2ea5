"""Which TLS context the delivery lanes get: verifying wherever TLS may be spoken."""

from __future__ import annotations

import ssl

import pytest

from reverse_etl.insider.http.tls import lane_context, verifying_context

PROXY_VARIABLES = ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "HTTPS_PROXY", "https_proxy",
                   "HTTP_PROXY", "http_proxy")


@pytest.fixture
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _verifies(context: ssl.SSLContext) -> bool:
    return context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


def test_https_lanes_verify_certificates_and_share_one_context(no_proxy: pytest.MonkeyPatch) -> None:
    first = lane_context("https://unification.useinsider.com")
    assert _verifies(first)
    assert lane_context("HTTPS://contact.useinsider.com") is first is verifying_context()


def test_plain_http_reached_directly_loads_no_certificates(no_proxy: pytest.MonkeyPatch) -> None:
    context = lane_context("http://127.0.0.1:8080")
    assert not _verifies(context) and context is not verifying_context()


def test_plain_http_behind_a_proxy_still_verifies(no_proxy: pytest.MonkeyPatch) -> None:
    # The proxy itself may be reached over TLS: the lanes keep the verifying context.
    no_proxy.setenv("HTTPS_PROXY", "https://proxy.internal:3128")
    assert _verifies(lane_context("http://127.0.0.1:8080"))
