"""Outbound HTTP of the emulator (FPS file download and callback, export hook).

The emulator only ever talks to loopback addresses: a file URL, callback or hook
pointing anywhere else is refused, so tests can never reach the network.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any
from urllib.parse import urlsplit

import httpx

from .state import EmulatorState

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
TIMEOUT = httpx.Timeout(10.0)


class OutboundError(Exception):
    """A download or callback that failed; the message says why."""


def url_problem(url: Any, *, need_csv: bool = False) -> str | None:
    """Why the emulator will not use ``url`` (not http(s), not loopback...), or ``None``."""
    if not isinstance(url, str) or not url:
        return "URL must be a non-empty string"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return f"URL scheme must be http or https: {url}"
    if parts.hostname not in LOCAL_HOSTS:
        return f"the emulator only fetches from/posts to 127.0.0.1 or localhost: {url}"
    if need_csv and ".csv" not in parts.path:
        return f"the file URL path must contain .csv: {url}"
    return None


def spawn(state: EmulatorState, coro: Coroutine[Any, Any, None]) -> None:
    """Run ``coro`` in the background; ``Emulator.stop`` cancels it, ``wait_idle`` awaits it."""
    task = asyncio.get_running_loop().create_task(coro)
    state.tasks.add(task)
    task.add_done_callback(state.tasks.discard)


async def download(url: str, max_bytes: int) -> bytes:
    """GET ``url`` (loopback only), refusing bodies above ``max_bytes``."""
    problem = url_problem(url)
    if problem is not None:
        raise OutboundError(problem)
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT, trust_env=False) as client, \
                client.stream("GET", url) as response:
            if response.status_code != 200:
                raise OutboundError(f"GET {url} answered {response.status_code}")
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise OutboundError(f"file is larger than {max_bytes:,} bytes")
                chunks.append(chunk)
            return b"".join(chunks)
    except httpx.HTTPError as exc:
        raise OutboundError(f"GET {url} failed: {exc!r}") from exc


async def post_json(url: str, payload: Any) -> int:
    """POST ``payload`` as JSON to ``url`` (loopback only); the response status."""
    problem = url_problem(url)
    if problem is not None:
        raise OutboundError(problem)
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT, trust_env=False) as client:
            response = await client.post(url, json=payload)
            return response.status_code
    except httpx.HTTPError as exc:
        raise OutboundError(f"POST {url} failed: {exc!r}") from exc
