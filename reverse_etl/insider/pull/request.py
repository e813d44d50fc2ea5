"""The export request: ``POST {api_base_url}/api/raw/v1/export`` (insider-api.md §7).

Only transient failures that cannot have been accepted are retried: a refused
connection and 5xx answers (failed requests do not count towards the daily
export). A timeout after the request went out is *not* retried, because Insider
may have accepted it and a second request would then be answered 429.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from reverse_etl.errors import AuthenticationError, DeliveryError, TransientError
from reverse_etl.insider.config import InsiderDestinationConfig
from reverse_etl.insider.http.useragent import USER_AGENT
from reverse_etl.insider.pull.config import ExportConfig

from .guard import describe_wait

EXPORT_PATH = "/api/raw/v1/export"
ATTEMPTS = 4


class ExportQuotaError(DeliveryError):
    """Insider answered 429: this partner's one raw export of the UTC day is used."""


def build_body(export: ExportConfig, hook_url: str, now: datetime) -> dict[str, Any]:
    """The JSON body Insider expects for ``export``, relative dates resolved at ``now``."""
    body: dict[str, Any] = {"segment": {"segment_id": export.segment_id}}
    if export.attributes:
        body["attributes"] = list(export.attributes)
    if export.events is not None:
        start, end = export.events.epoch_range(now)
        wanted = []
        for event in export.events.wanted:
            item: dict[str, Any] = {"event_name": event.name, "params": list(event.params)}
            if event.filter is not None:
                flt: dict[str, Any] = {"key": event.filter.key, "operator": event.filter.operator}
                if event.filter.values is not None:
                    flt["values"] = list(event.filter.values)
                else:
                    flt["values_url"] = event.filter.values_url
                item["filters"] = [flt]
            wanted.append(item)
        body["events"] = {"start_date": start, "end_date": end, "wanted": wanted}
    body["format"] = export.format
    body["hook"] = hook_url
    return body


def _insider_message(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text.strip().splitlines()[0][:200] if response.text.strip() else ""
    if isinstance(data, dict):
        for key in ("error", "message"):
            if isinstance(data.get(key), str):
                return str(data[key])
    return str(data)[:200]


def _post_once(client: httpx.Client, url: str, body: dict[str, Any]) -> httpx.Response:
    try:
        response = client.post(url, json=body)
    except httpx.ConnectError as exc:
        raise TransientError(f"cannot connect to {url}: {exc}") from exc
    if response.status_code >= 500:
        raise TransientError(f"Insider answered {response.status_code}: "
                             f"{_insider_message(response)}")
    return response


def send_request(destination: InsiderDestinationConfig, export: ExportConfig,
                 body: dict[str, Any], now: datetime,
                 transport: httpx.BaseTransport | None = None) -> None:
    """Send the export request; return once Insider accepted it (200), else raise.

    429 and 4xx raise :class:`DeliveryError` (401/403 :class:`AuthenticationError`)
    with one line; the API key never appears in a message.
    """
    url = destination.api_base_url + EXPORT_PATH
    headers = {"X-PARTNER-NAME": destination.partner,
               "X-REQUEST-TOKEN": destination.api_key.get_secret_value(),
               "Content-Type": "application/json", "User-Agent": USER_AGENT}
    retrying = Retrying(retry=retry_if_exception_type(TransientError),
                        stop=stop_after_attempt(ATTEMPTS),
                        wait=wait_exponential(multiplier=0.5, max=8), reraise=True)
    try:
        with httpx.Client(headers=headers, timeout=destination.timeout_seconds,
                          transport=transport) as client:
            response = retrying(_post_once, client, url, body)
    except TransientError as exc:
        raise DeliveryError(f"export {export.name!r}: request failed after {ATTEMPTS} "
                            f"attempts: {exc}") from None
    except httpx.HTTPError as exc:
        # Not retried: the request may have reached Insider (see the module docstring).
        raise DeliveryError(f"export {export.name!r}: request to {url} failed "
                            f"({type(exc).__name__}); it may have been accepted: wait for "
                            "the hook or check with Insider before retrying") from None
    status = response.status_code
    if status == 200:
        return
    message = _insider_message(response)
    if status == 429:
        raise ExportQuotaError(
            f"export {export.name!r}: Insider answered 429 ({message or 'too many requests'}): "
            f"partner {destination.partner!r} already used today's one raw export per UTC day; "
            f"run it again {describe_wait(now)}")
    if status in (401, 403):
        raise AuthenticationError(
            f"export {export.name!r}: Insider refused the credentials ({status}: {message}); "
            "check destination.partner and the API key")
    raise DeliveryError(f"export {export.name!r}: Insider refused the request ({status}: "
                        f"{message}); check the export definition in syncs.yml")
