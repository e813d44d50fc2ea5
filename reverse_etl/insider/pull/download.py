"""Download the export file the hook announced, streaming it to a local file.

The link is a bare URL on Insider's storage: no partner or token header is sent
with it (it must not leak the API key to another host). Links expire 24 hours
after the export was produced; Insider's storage then answers 410, 403 or 404,
which becomes one line saying so. Dropped connections and 5xx answers are
retried (a GET is idempotent), starting the file over.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from reverse_etl.errors import DeliveryError, TransientError
from reverse_etl.insider.http.useragent import USER_AGENT

ProgressCallback = Callable[[str, int, "int | None"], None]
"""``(stage, done, total)``: bytes downloaded so far and the size when known."""

ATTEMPTS = 4
CHUNK_BYTES = 1 << 20
EXPIRED_STATUSES = (403, 404, 410)


def _redacted(url: str) -> str:
    # Presigned links carry their signature in the query string: never print it.
    return url.split("?", 1)[0]


def _fetch_once(client: httpx.Client, url: str, target: Path, export: str,
                progress: ProgressCallback | None) -> int:
    try:
        with client.stream("GET", url) as response:
            status = response.status_code
            if status in EXPIRED_STATUSES:
                raise DeliveryError(
                    f"export {export!r}: the file link answered {status} "
                    f"({_redacted(url)}): export links expire 24 hours after the export was "
                    "produced; request a new export (one per UTC day)")
            if status >= 500:
                raise TransientError(f"the file server answered {status}")
            if status != 200:
                raise DeliveryError(f"export {export!r}: downloading {_redacted(url)} "
                                    f"answered {status}")
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            done = 0
            with target.open("wb") as out:
                for chunk in response.iter_bytes(CHUNK_BYTES):
                    out.write(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress("download", done, total)
            if progress is not None and total != done:
                progress("download", done, done)  # the size was unknown (or wrong)
            return done
    except (httpx.TransportError, httpx.DecodingError) as exc:
        raise TransientError(f"{type(exc).__name__}: {exc}") from exc


def download_file(url: str, target: Path, *, export: str, timeout: float = 60.0,
                  progress: ProgressCallback | None = None,
                  transport: httpx.BaseTransport | None = None) -> int:
    """Stream ``url`` into ``target``; the number of bytes written.

    Raises :class:`DeliveryError` with one line for an expired link, another
    refusal, or a failure that persisted over the retries.
    """
    retrying = Retrying(retry=retry_if_exception_type(TransientError),
                        stop=stop_after_attempt(ATTEMPTS),
                        wait=wait_exponential(multiplier=0.5, max=8), reraise=True)
    try:
        with httpx.Client(timeout=httpx.Timeout(timeout), follow_redirects=True,
                          headers={"User-Agent": USER_AGENT}, transport=transport) as client:
            return retrying(_fetch_once, client, url, target, export, progress)
    except TransientError as exc:
        raise DeliveryError(f"export {export!r}: downloading {_redacted(url)} failed after "
                            f"{ATTEMPTS} attempts ({exc}); the link stays valid for 24 hours: "
                            f"retry with `reverse-etl pull {export} --from-url URL`") from None
