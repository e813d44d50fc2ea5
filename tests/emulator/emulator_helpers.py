"""Constants and helpers shared by the emulator tests."""

from __future__ import annotations

import json
from typing import Any

import httpx

HEADERS = {"X-PARTNER-NAME": "acme", "X-REQUEST-TOKEN": "test-key"}
UPSERT = "/api/user/v1/upsert"
ATTR_DELETE = "/api/user/v1/attribute/delete"
IDENTITY = "/api/user/v1/identity"
USER_DELETE = "/api/user/v1/delete"
ANONYMIZE = "/api/user/v1/anonymize"
FPS = "/fps/v1/upload"
EXPORT = "/api/raw/v1/export"


def upsert(client: httpx.Client, *users: dict[str, Any], **top: Any) -> httpx.Response:
    """POST users to the upsert endpoint."""
    return client.post(UPSERT, json={"users": list(users), **top})


def ok(n: int) -> dict[str, Any]:
    """The documented all-good upsert body."""
    return {"data": {"successful": {"count": n}, "fail": {}}}


class Receiver:
    """A tiny HTTP server on 127.0.0.1: serves ``files`` and records JSON POSTs."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.files: dict[str, bytes] = {}
        self.posts: list[tuple[str, Any]] = []
        self._arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                data = receiver.files.get(self.path)
                self.send_response(200 if data is not None else 404)
                self.send_header("Content-Length", str(len(data or b"")))
                self.end_headers()
                self.wfile.write(data or b"")

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                with receiver._arrived:
                    receiver.posts.append((self.path, json.loads(body)))
                    receiver._arrived.notify_all()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)
        self._thread.start()

    def wait_for(self, n: int, timeout: float = 10.0) -> list[tuple[str, Any]]:
        """Block until ``n`` POSTs arrived; returns them."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self.posts) >= n, timeout):
                raise AssertionError(f"expected {n} POSTs, got {self.posts}")
            return list(self.posts)

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()
