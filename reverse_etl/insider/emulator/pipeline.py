"""The path every API request takes before its handler: faults, auth, limits, parsing, log.

Order (and why):

1. read the body (so even a faulted request is logged with what was sent);
2. injected faults: latency, then a dropped connection or a 429/5xx — before
   anything else, so a faulted request has changed nothing and can be retried
   (except a lost answer: the request runs to the end, then its connection is
   dropped);
3. authentication: a wrong partner header (exact, lowercase), a wrong token or a key
   listed in ``forbidden_api_keys`` → 403 ``{"success":false,"message":"Access Denied.
   You do not have sufficient access to perform this action."}``, the one body Insider's
   reference documents for an authentication error (FPS: 401
   ``{"statusMessage":"Unauthorized"}``, as documented there); endpoints Insider
   authenticates by body (the consent API) skip this step;
4. rate limit of the endpoint's family → 429 with Retry-After;
5. size limit and JSON parsing (a non-JSON ``Content-Type`` is a 400; none is accepted);
6. the handler, which returns ``(status, payload)``; the request is logged.

The token is compared and forgotten: the log keeps ``"[redacted]"`` in its place (also
for an ``api_key`` field of a JSON body, which PII deletion by profile ID carries).
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from .state import EmulatorState

MAX_BODY_BYTES = 5_000_000
TOO_MANY = {"error": "rejected: too many requests"}
FAULT_BODIES: dict[int, dict[str, Any]] = {
    429: TOO_MANY,
    500: {"success": False,
          "message": "The request processing has failed because of an unknown error."},
    502: {"error": "bad gateway (injected by the emulator)"},
    503: {"error": "service unavailable (injected by the emulator)"},
    504: {"error": "gateway timeout (injected by the emulator)"},
    520: {"error": "unknown error (injected by the emulator)"},
}
_JSON = "application/json"
ACCESS_DENIED = {"success": False,
                 "message": "Access Denied. You do not have sufficient access to perform "
                            "this action."}

Outcome = tuple[int, Any, "dict[str, str] | None"]
Handler = Callable[[Any, web.Request], Awaitable[Outcome]]


class BadRequest(Exception):
    """Raised by handlers for a whole-request 4xx; ``payload`` is the JSON body."""

    def __init__(self, payload: Any, status: int = 400) -> None:
        super().__init__(str(payload))
        self.payload = payload
        self.status = status


def bad_request(reason: str) -> BadRequest:
    """A 400 in Insider's ``{"error":"<reason>: bad request"}`` style."""
    return BadRequest({"error": f"{reason}: bad request"})


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None
                  ) -> web.Response:
    """An ``application/json`` response encoded with orjson (``bytes``: plain text as is)."""
    if isinstance(payload, bytes):
        return web.Response(status=status, body=payload, content_type="text/plain",
                            headers=headers)
    return web.Response(status=status, body=orjson.dumps(payload), content_type=_JSON,
                        headers=headers)


def _drop(request: web.Request) -> web.StreamResponse:
    # Abort the TCP connection without writing a byte: the client sees the server
    # disconnect mid-request (httpx: RemoteProtocolError). Raising afterwards keeps
    # aiohttp from trying to write a response to the dead transport.
    transport = request.transport
    if transport is not None:
        transport.abort()
    raise asyncio.CancelledError


class Pipeline:
    """Wraps endpoint handlers with the shared request path (see module docstring)."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        opts = state.options
        self._partner = opts.partner
        self._token = opts.api_key.encode()
        self._forbidden = tuple(k.encode() for k in opts.forbidden_api_keys)

    def _auth(self, request: web.Request, fps: bool) -> Outcome | None:
        partner = request.headers.get("X-PARTNER-NAME")
        token = (request.headers.get("X-REQUEST-TOKEN") or "").encode()
        if fps:
            if not partner:  # the FPS reference's error table: "partner name is missing"
                return 400, {"statusMessage": "partner name is missing"}, None
            if partner != self._partner or not hmac.compare_digest(token, self._token):
                return 401, {"statusMessage": "Unauthorized"}, None
            return None
        if (partner != self._partner
                or any(hmac.compare_digest(token, k) for k in self._forbidden)
                or not hmac.compare_digest(token, self._token)):
            return 403, ACCESS_DENIED, None
        return None

    def wrap(self, endpoint: str, handler: Handler, *, fps: bool = False, auth: bool = True,
             max_body: int = MAX_BODY_BYTES) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """An aiohttp handler running ``handler(body, request)`` behind the pipeline.

        ``auth=False``: no header authentication (the handler checks the body).
        """
        state = self.state

        async def run(request: web.Request) -> web.StreamResponse:
            raw = await request.read()
            entry: dict[str, Any] = {
                "time": state.now(), "method": request.method, "path": request.path_qs,
                "endpoint": endpoint, "status": None, "fault": None,
                "headers": {"X-PARTNER-NAME": request.headers.get("X-PARTNER-NAME"),
                            "X-REQUEST-TOKEN": "[redacted]"
                            if "X-REQUEST-TOKEN" in request.headers else None,
                            "User-Agent": request.headers.get("User-Agent")},
                "body": None, "response": None,
            }
            body: Any = None
            parse_error = None
            if len(raw) > max_body:
                entry["body"] = {"_oversize_bytes": len(raw)}  # refused unparsed below
            else:
                try:
                    body = orjson.loads(raw) if raw else None
                    entry["body"] = ({**body, "api_key": "[redacted]"}
                                     if type(body) is dict and "api_key" in body else body)
                except orjson.JSONDecodeError as exc:
                    parse_error = str(exc)
                    entry["body"] = {"_unparsed": raw[:500].decode("utf-8", "replace")}
            entry["skip_hook"] = body.get("skip_hook") if type(body) is dict else None
            outcome = await self._pre(request, endpoint, entry, fps, auth)
            if outcome is None:
                if len(raw) > max_body:
                    outcome = 400, {"error": "request body is bigger than maximum allowed "
                                    f"size {max_body:,} bytes"}, None
                elif parse_error is not None:
                    outcome = (405, {"error": "Invalid Payload."}, None) if fps else (
                        400, {"error": f"invalid JSON ({parse_error}): bad request"}, None)
                elif (not fps and "Content-Type" in request.headers
                      and request.content_type != _JSON):
                    # No Content-Type at all is accepted: Insider's own collection sends
                    # the identity DELETE without one.
                    outcome = 400, {"error": "Content-Type must be application/json: bad request"}, None
                else:
                    try:
                        outcome = await handler(body, request)
                    except BadRequest as exc:
                        outcome = exc.status, exc.payload, None
            status, payload, headers = outcome
            entry["status"] = status
            entry["response"] = payload
            if headers:
                entry["response_headers"] = headers
            state.record(entry)
            if entry["fault"] == "lost_answer":
                _drop(request)  # applied above; the answer never reaches the client
            return json_response(status, payload, headers)

        return run

    async def _pre(self, request: web.Request, endpoint: str, entry: dict[str, Any],
                   fps: bool, auth: bool = True) -> Outcome | None:
        state = self.state
        with state.lock:
            decision = state.faults.decide(endpoint)
        if decision is not None:
            if decision.latency_s:
                await asyncio.sleep(decision.latency_s)
            if decision.lose_answer:
                entry["fault"] = "lost_answer"  # the handler runs; run() drops the answer
            if decision.drop:
                entry["fault"] = "drop"
                state.record(entry)
                _drop(request)
            if decision.status is not None:
                entry["fault"] = decision.status
                headers = None
                if decision.status == 429:
                    headers = {"Retry-After": str(state.faults.config.retry_after)}
                return decision.status, FAULT_BODIES[decision.status], headers
        denied = self._auth(request, fps) if auth else None
        if denied is not None:
            return denied
        with state.lock:
            retry_after = state.limiter.acquire(endpoint)
        if retry_after is not None:
            entry["fault"] = "rate_limit"
            return 429, TOO_MANY, {"Retry-After": str(retry_after)}
        return None
