"""Starting and stopping ``reverse-etl serve``: the service, its app and uvicorn."""

from __future__ import annotations

import errno
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
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


def serve(options: ServeOptions, announce: Callable[[str], None] | None = None) -> None:
    """Run the server in the foreground until Ctrl-C or SIGTERM (both a normal stop).

    ``announce`` receives one line saying where it listens and what it schedules.
    """
    import uvicorn

    from reverse_etl.serve.app import create_app

    service = build_service(options)
    sock = _bind(options.host, options.port)
    config = uvicorn.Config(create_app(service), log_level="info", lifespan="off")
    service.start()
    if announce is not None:
        host, port = sock.getsockname()[:2]
        scheduled = ", ".join(f"{p.sync} {p.describe()}" for p in service.plans) if options.schedules else "off"
        announce(f"serving {service.project.config_path} on http://{host}:{port} "
                 f"(schedules: {scheduled or 'none'})")
    # uvicorn re-raises the signal that stopped it once it has shut down; with these
    # handlers that ends here, so a stop by SIGTERM (containers) or Ctrl-C exits 0.
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        service.stop()
        sock.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
