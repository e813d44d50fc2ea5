"""A small local HTTP server: serves segment files and receives Insider's FPS callbacks.

Insider downloads the file from ``fileUrl`` and later POSTs its counts to
``callbackUrl`` (insider-api.md §6). For local work against the emulator both
live on one server bound to 127.0.0.1; each run uses a fresh random token in
the paths, so a stale callback or a guessed URL gets a 404. The server lives
only as long as the run that started it (see ``segments.mode`` for what a
later run does with an upload whose callback never came).
"""

from __future__ import annotations

import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson


class SegmentServer:
    """Serve ``files`` (name → bytes) and collect callbacks, until :meth:`close`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, public_url: str | None = None) -> None:
        self.token = secrets.token_urlsafe(16)
        self.files: dict[str, bytes] = {}
        self.callbacks: list[dict[str, Any]] = []
        self.downloads: list[str] = []
        self._arrived = threading.Condition()
        self._httpd = ThreadingHTTPServer((host, port), self._handler())
        self._httpd.daemon_threads = True
        bound_host, bound_port = self._httpd.server_address[:2]
        host_text = bound_host.decode() if isinstance(bound_host, bytes) else str(bound_host)
        self.base_url = (public_url or f"http://{host_text}:{bound_port}").rstrip("/")
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="segment-server", daemon=True)
        self._thread.start()

    def file_url(self, name: str) -> str:
        """The URL of a served file (its path contains ``.csv``, as Insider requires)."""
        return f"{self.base_url}/{self.token}/{name}"

    @property
    def callback_url(self) -> str:
        """Where Insider posts the processing result."""
        return f"{self.base_url}/{self.token}/callback"

    def wait_for(self, segment_names: set[str], timeout: float) -> dict[str, dict[str, Any]]:
        """Callbacks for ``segment_names`` that arrived within ``timeout`` seconds."""
        def got() -> dict[str, dict[str, Any]]:
            return {c["segment_name"]: c for c in self.callbacks if c.get("segment_name") in segment_names}

        with self._arrived:
            self._arrived.wait_for(lambda: len(got()) == len(segment_names), timeout=timeout)
            return got()

    def close(self) -> None:
        """Stop serving (files are no longer downloadable)."""
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> SegmentServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass  # the run's result says what happened; no stderr noise

            def _reply(self, status: int, body: bytes, kind: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                prefix = f"/{server.token}/"
                name = self.path[len(prefix):] if self.path.startswith(prefix) else None
                data = server.files.get(name) if name else None
                if data is None:
                    self._reply(404, b'{"error":"not found"}')
                    return
                server.downloads.append(name or "")
                self._reply(200, data, "text/csv")

            def do_POST(self) -> None:
                if self.path != f"/{server.token}/callback":
                    self._reply(404, b'{"error":"not found"}')
                    return
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    payload = orjson.loads(self.rfile.read(length))
                except orjson.JSONDecodeError:
                    self._reply(400, b'{"error":"not JSON"}')
                    return
                if isinstance(payload, dict):
                    with server._arrived:
                        server.callbacks.append(payload)
                        server._arrived.notify_all()
                self._reply(200, b"{}")

        return Handler
