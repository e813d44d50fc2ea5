"""A fakesnow server the real Snowflake connector talks to, for the source tests.

The server runs fakesnow's own Starlette app behind a thin ASGI layer that
records every login request (so tests can see the session parameters and the
key-pair JWT the connector really sent) and refuses one password the way
Snowflake does, because fakesnow itself accepts any credentials.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

WRONG_PASSWORD = "wr0ng-Pa55word-xyz"
"""A password the fake Snowflake refuses with Snowflake's own error."""

LOGIN_PATH = "/session/v1/login-request"


class LoginGate:
    """ASGI middleware: records login bodies, refuses :data:`WRONG_PASSWORD`."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.logins: list[dict[str, Any]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != LOGIN_PATH:
            await self.app(scope, receive, send)
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        gzipped = dict(scope["headers"]).get(b"content-encoding") == b"gzip"
        data = json.loads(gzip.decompress(body) if gzipped else body)["data"]
        self.logins.append(data)
        if data.get("PASSWORD") == WRONG_PASSWORD:
            await _json(send, 200, {
                "data": {"nextAction": None, "authnMethod": "USERNAME_PASSWORD"},
                "code": "390100",
                "message": "Incorrect username or password was specified.",
                "success": False,
            })
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _json(send: Send, status: int, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


class FakeSnowflake:
    """A running fakesnow server: where it listens and what logins it saw."""

    def __init__(self, port: int, gate: LoginGate) -> None:
        self.port = port
        self.gate = gate

    def config(self, database: str, **overrides: Any) -> dict[str, Any]:
        """A ``source:`` mapping for this server (password auth unless overridden)."""
        config: dict[str, Any] = {
            "type": "snowflake",
            "account": "fakesnow",
            "user": "reverse_etl_test",
            "password": "s3cret-Pa55word-abc",
            "database": database,
            "schema": "PUBLIC",
            "warehouse": "COMPUTE_WH",
            "role": "SYSADMIN",
            "host": "127.0.0.1",
            "port": self.port,
            "protocol": "http",
        }
        config.update(overrides)
        return config

    def connect(self, database: str) -> Any:
        """A plain connector session for setting up tables."""
        import snowflake.connector

        return snowflake.connector.connect(
            account="fakesnow", user="setup", password="setup", host="127.0.0.1",
            port=self.port, protocol="http", database=database, schema="PUBLIC",
            login_timeout=10,
        )

    def execute(self, database: str, *statements: str) -> None:
        """Run setup statements in ``database``."""
        with self.connect(database) as conn, conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)


@contextlib.contextmanager
def serve_fakesnow() -> Iterator[FakeSnowflake]:
    """Run fakesnow's server app (behind a :class:`LoginGate`) on a free 127.0.0.1 port.

    Like ``fakesnow.server()``, which cannot be wrapped: importing its app module
    replaces that function on the package.
    """
    import uvicorn
    from fakesnow.server import app

    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    gate = LoginGate(app)
    server = uvicorn.Server(uvicorn.Config(gate, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="fakesnow", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the fakesnow server did not start")
        time.sleep(0.05)
    try:
        yield FakeSnowflake(port, gate)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
