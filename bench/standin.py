"""An Insider stand-in that acknowledges instantly: it counts users and answers 200.

Benchmarks of the engine time it against this, not against the emulator, so the
number measured is the tool's own cost (the emulator validates and stores every
profile, and is itself the bound at ~110k users/s). Run it in its own process::

    python bench/standin.py --port 8799
    curl -s 127.0.0.1:8799/_standin/counts
"""

from __future__ import annotations

import argparse

import orjson
from aiohttp import web

COUNTS = {"requests": 0, "users": 0}


async def acknowledge(request: web.Request) -> web.Response:
    """Any POST/PATCH/DELETE: count the users in the body, acknowledge them all."""
    body = await request.read()
    # Counted without parsing: each user object of a bulk body opens with its identifiers
    # (how the engine encodes them), so a byte count is exact and costs the stand-in next
    # to nothing; parsing 1,000-user bodies made it, not the engine, the bound.
    users = body.count(b'{"identifiers":') if body.startswith(b'{"users":[') else 0
    COUNTS["requests"] += 1
    COUNTS["users"] += users or 1
    return web.Response(body=orjson.dumps({"data": {"successful": {"count": users or 1}, "fail": {}}}),
                        content_type="application/json")


async def counts(_request: web.Request) -> web.Response:
    """What was acknowledged so far."""
    return web.Response(body=orjson.dumps(COUNTS), content_type="application/json")


def serve(host: str = "127.0.0.1", port: int = 8799) -> None:
    """Serve until killed."""
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_get("/_standin/counts", counts)
    app.router.add_route("*", "/{tail:.*}", acknowledge)
    web.run_app(app, host=host, port=port, print=None, access_log=None)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8799)
    args = parser.parse_args()
    serve(args.host, args.port)
