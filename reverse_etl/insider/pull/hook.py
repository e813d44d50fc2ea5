"""A small HTTP receiver for Insider's export hook: ``POST <hook> {"url": "..."}``.

It listens (http.server, one background thread) from *before* the export
request is sent until the first valid hook arrives or the bounded wait ends, so
a hook that arrives instantly is never missed. Any path is accepted, because a
proxy in front of ``public_url`` may rewrite it; bodies that are not a JSON
object with an http(s) ``url`` are answered 400 and ignored.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from reverse_etl.errors import ConfigError, DeliveryError
from reverse_etl.insider.pull.config import ExportWebhook

MAX_BODY_BYTES = 64 * 1024


class _Handler(BaseHTTPRequestHandler):
    server: _HookServer

    def do_POST(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 < length <= MAX_BODY_BYTES:
            self._answer(400, {"error": "expected a small JSON body"})
            return
        try:
            data: Any = json.loads(self.rfile.read(length))
        except ValueError:
            data = None
        url = data.get("url") if isinstance(data, dict) else None
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            self._answer(400, {"error": 'expected {"url": "https://..."}'})
            return
        self._answer(200, {"success": True})
        self.server.urls.put(url)

    def do_GET(self) -> None:
        # A health check for whoever sets up the public URL / tunnel.
        self._answer(200, {"waiting_for": "POST {\"url\": ...}"})

    def _answer(self, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the core never prints; the URL it receives is reported by the caller


class _HookServer(ThreadingHTTPServer):
    daemon_threads = True
    urls: queue.Queue[str]


class HookReceiver:
    """Listen on the webhook's bind address; :meth:`wait` returns the posted file URL.

    Use as a context manager; ``hook_url`` is what to send to Insider.
    """

    def __init__(self, config: ExportWebhook, export: str) -> None:
        self.config = config
        self.export = export
        try:
            self._server = _HookServer((config.host, config.port), _Handler)
        except OSError as exc:
            raise ConfigError(
                f"export {export!r}: cannot listen on {config.host}:{config.port} for "
                f"Insider's hook ({exc.strerror or exc}); change webhook.host/port") from None
        self._server.urls = queue.Queue()
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.1,),
                                        name="reverse-etl-export-hook", daemon=True)
        self._thread.start()

    @property
    def hook_url(self) -> str:
        """``public_url`` if configured, else ``http://<host>:<port><path>``."""
        if self.config.public_url:
            return self.config.public_url
        host = self.config.host
        if host in ("0.0.0.0", "", "::"):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}{self.config.path}"

    def wait(self, timeout: float | None = None) -> str:
        """Block until the hook brings the file URL, at most ``wait_seconds``."""
        limit = self.config.wait_seconds if timeout is None else timeout
        started = time.monotonic()
        try:
            return self._server.urls.get(timeout=limit)
        except queue.Empty:
            waited = int(time.monotonic() - started)
            raise DeliveryError(
                f"export {self.export!r}: Insider accepted the request but no hook reached "
                f"{self.hook_url} within {waited}s (webhook.wait_seconds); today's export is "
                "used: when the link arrives, load it with "
                f"`reverse-etl pull {self.export} --from-url URL`") from None

    def close(self) -> None:
        """Stop listening."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> HookReceiver:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
