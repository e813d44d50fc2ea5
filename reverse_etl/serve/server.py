"""Starting and stopping ``reverse-etl serve``: the service, its app and uvicorn."""

from __future__ import annotations

import errno
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from reverse_etl.errors import UsageError
from reverse_etl.serve.clock import Clock
from reverse_etl.serve.service import ServeOptions, Service


def build_service(options: ServeOptions, clock: Clock | None = None) -> Service:
    """Load the project and build its service (nothing started yet)."""
    return Service(options, clock)


def _bind(host: str, port: int) -> socket.socket:
    """Bind first, so a taken port is one clear line before anything starts."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise UsageError(f"--port {port}: {host}:{port} is already in use; pass --port with a free port") from None
        raise UsageError(f"--host {host} --port {port}: cannot listen there ({exc.strerror}); "
                         "pick another host or port") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


@contextmanager
def running(service: Service, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve ``service`` on a thread; yields its base URL; stops it on exit (tests, embedding)."""
    import uvicorn

    from reverse_etl.serve.app import create_app

    sock = _bind(host, port)
    bound_port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(service), log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="reverse-etl-http",
                              daemon=True)
    service.start()
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the HTTP server stopped while starting")
            time.sleep(0.01)
        yield f"http://{host}:{bound_port}"
    finally:
        server.should_exit = True
        thread.join(10)
        service.stop()
        sock.close()


def serve(options: ServeOptions) -> None:
    """Run the server in the foreground until Ctrl-C or SIGTERM."""
    import uvicorn

    from reverse_etl.serve.app import create_app

    service = build_service(options)
    sock = _bind(options.host, options.port)
    config = uvicorn.Config(create_app(service), log_level="info", lifespan="off")
    service.start()
    try:
        uvicorn.Server(config).run(sockets=[sock])  # handles SIGINT/SIGTERM: stops accepting, returns
    finally:
        service.stop()
        sock.close()
