"""``POST {fps_base_url}/fps/v1/upload`` and the production file store (presigned S3).

One request per segment file, so it does not go through the batched row
client in ``reverse_etl.insider.http``; retries (tenacity) cover 5xx, 429 and
connection failures, and every answer Insider documents becomes a clear message.
"""

from __future__ import annotations

from typing import Any

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from reverse_etl.errors import AuthenticationError, ConfigError, DeliveryError, Transient
from reverse_etl.insider.config import InsiderDestinationConfig
from reverse_etl.insider.http.responses import parse_retry_after
from reverse_etl.insider.http.useragent import USER_AGENT

UPLOAD_PATH = "/fps/v1/upload"


RETRY_STATUSES = frozenset({429, 500, 502, 503, 504, 520})
RETRY_AFTER_CAP = 120.0


class _Retry(Transient, Exception):
    """A response worth another attempt (429 or 5xx), with Insider's Retry-After."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def upload_segment(destination: InsiderDestinationConfig, body: dict[str, str], *, retries: int = 3,
                   transport: httpx.BaseTransport | None = None) -> None:
    """Register one segment file with Insider; raises :class:`DeliveryError` when refused.

    Retries (tenacity, exponential backoff, Retry-After honoured and capped) on
    429/5xx and on connection failures. An attempt that may have reached Insider
    (a timeout, a 5xx) makes a later "segment name already in use" mean that
    attempt was accepted, not that the name clashes.
    """
    headers = {"X-PARTNER-NAME": destination.partner,
               "X-REQUEST-TOKEN": destination.api_key.get_secret_value(),
               "Content-Type": "application/json"}
    url = destination.fps_base_url + UPLOAD_PATH
    name = body["segmentName"]
    reached = False  # has an earlier attempt possibly been processed by Insider?

    def wait(state: RetryCallState) -> float:
        outcome = state.outcome
        error = outcome.exception() if outcome is not None else None
        if isinstance(error, _Retry):
            after = parse_retry_after(error.response.headers.get("Retry-After"))
            if after is not None:
                return min(after, RETRY_AFTER_CAP)
        return float(min(0.5 * 2 ** (state.attempt_number - 1), 8.0))

    with httpx.Client(timeout=destination.timeout_seconds, transport=transport, trust_env=False,
                      headers={"User-Agent": USER_AGENT}) as client:

        def attempt() -> httpx.Response:
            nonlocal reached
            try:
                response = client.post(url, json=body, headers=headers)
            except httpx.ConnectError:
                raise  # never left this machine
            except httpx.HTTPError:
                reached = True
                raise
            if response.status_code in RETRY_STATUSES:
                reached = reached or response.status_code != 429
                raise _Retry(response)
            return response

        try:
            response = Retrying(
                stop=stop_after_attempt(retries + 1), wait=wait, reraise=True,
                retry=retry_if_exception_type((_Retry, httpx.HTTPError)))(attempt)
        except _Retry as exc:
            raise DeliveryError(_refusal(name, exc.response)) from None
        except httpx.HTTPError as exc:
            raise DeliveryError(f"segment {name!r}: upload request failed: {type(exc).__name__}") from None
    if response.status_code == 200:
        return
    if reached and response.status_code == 400 and "already in use" in response.text:
        return  # an earlier attempt registered it
    if response.status_code in (401, 403):
        raise AuthenticationError(_refusal(name, response))
    raise DeliveryError(_refusal(name, response))


def _refusal(name: str, response: httpx.Response) -> str:
    try:
        data: Any = response.json()
    except ValueError:
        data = {}
    message = str((data or {}).get("statusMessage") or (data or {}).get("error") or response.text[:200])
    status = response.status_code
    if status == 400 and "already in use" in message:
        return (f"segment name {name!r} is already in use in Insider: first-party segment names are unique "
                "in the account and cannot be uploaded twice. Pick a new segment.name (or delete the "
                "segment in Insider); `reverse-etl reset` forgets the version counter, so after a reset "
                "the next upload reuses the base name")
    if status == 401:
        return f"segment {name!r}: Insider refused the credentials (401 {message}); check partner and api_key"
    if status == 405:
        return (f"segment {name!r}: Insider answered 405 {message} (segmentName, attributeName, fileUrl and "
                "callbackUrl must all be set; the file URL path must contain .csv)")
    return f"segment {name!r}: upload answered {status}: {message}"


def presigned_s3_url(bucket: str, key: str, data: bytes, expires_seconds: int) -> str:
    """Put ``data`` at ``s3://bucket/key`` and return a presigned GET URL.

    Needs the ``s3`` extra (``pip install reverse_etl[s3]``: boto3); credentials
    come from boto3's usual chain (environment, profile, instance role).
    """
    try:
        import boto3
    except ImportError:
        raise ConfigError("segment storage s3 needs boto3: pip install 'reverse_etl[s3]'") from None
    client = boto3.client("s3")
    client.put_object(Bucket=bucket, Key=key, Body=data, ContentType="text/csv")
    return str(client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key},
                                             ExpiresIn=expires_seconds))
