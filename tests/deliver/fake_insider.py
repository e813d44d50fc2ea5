"""A scriptable aiohttp server on 127.0.0.1 for answers the emulator cannot give.

The emulator answers like Insider; this double answers however a test says (a
malformed fail map, an unreadable 200, a 413, an echoed token...). ``handler``
receives ``(method, path, raw body)`` and returns ``(status, body bytes, headers)``.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable
from types import TracebackType

from aiohttp import web

Answer = tuple[int, bytes, dict[str, str]]
Handler = Callable[[str, str, bytes], Answer]


class FakeInsider:
    """Serves ``handler`` on a free 127.0.0.1 port in a background thread."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.bodies: list[bytes] = []
        self.headers: list[dict[str, str]] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        self.bodies.append(raw)
        self.headers.append(dict(request.headers))
        status, body, headers = self.handler(request.method, request.path, raw)
        return web.Response(
            status=status, body=body, headers=headers, content_type="application/json"
        )

    async def _start(self, sock: socket.socket) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()

    def __enter__(self) -> FakeInsider:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        sock.setblocking(False)
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(sock), self._loop).result(10)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
