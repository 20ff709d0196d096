"""The tiny backend behind both gateways in ``bench_gateway.py``, run as its own process.

``GET /homepage`` answers a small body at once, ``GET /slow`` after ``--slow`` seconds (2 s).
Every request is counted per path, with and without ``Authorization: Bearer``, and by the
client's (the gateway's) port, so the benchmark can check that each request it sent went
through with the user's token and see how many connections a gateway opened.
``GET /_stats`` answers the counters as JSON (the claims of the last token included),
``GET /_stats?reset=1`` also zeroes them. It prints one JSON line when it listens.

    python bench/tiny_backend.py --port 8099 [--slow 2]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import sys
from collections import Counter
from typing import Any

from aiohttp import web

BODY = b"hello from the tiny backend\n"


class Stats:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.requests: Counter[str] = Counter()
        self.bearer: Counter[str] = Counter()
        self.peers: set[Any] = set()
        self.in_flight = 0
        self.max_in_flight = 0
        self.last_token = ""

    def seen(self, request: web.Request, name: str) -> None:
        self.requests[name] += 1
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer ") and len(auth) > 20:
            self.bearer[name] += 1
            self.last_token = auth[7:]
        if request.transport is not None:
            self.peers.add(request.transport.get_extra_info("peername"))

    def snapshot(self) -> dict[str, Any]:
        return {"requests": dict(self.requests), "bearer": dict(self.bearer), "connections": len(self.peers),
                "max_in_flight": self.max_in_flight, "last_token_claims": _claims(self.last_token)}


def _claims(token: str) -> dict[str, Any]:
    try:
        payload = token.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}


def make_app(slow_seconds: float) -> web.Application:
    stats = Stats()

    async def homepage(request: web.Request) -> web.Response:
        stats.seen(request, "homepage")
        return web.Response(body=BODY, content_type="text/plain")

    async def slow(request: web.Request) -> web.Response:
        stats.seen(request, "slow")
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        try:
            await asyncio.sleep(slow_seconds)
        finally:
            stats.in_flight -= 1
        return web.Response(body=BODY, content_type="text/plain")

    async def get_stats(request: web.Request) -> web.Response:
        answer = web.json_response(stats.snapshot())
        if request.query.get("reset"):
            stats.reset()
        return answer

    app = web.Application()
    app.router.add_get("/homepage", homepage)
    app.router.add_get("/slow", slow)
    app.router.add_get("/_stats", get_stats)
    return app


async def serve(port: int, slow_seconds: float) -> None:
    runner = web.AppRunner(make_app(slow_seconds), access_log=None, keepalive_timeout=75)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=4096)
    await site.start()
    print(json.dumps({"ready": True, "port": port}), flush=True)
    await asyncio.Event().wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--slow", type=float, default=2.0)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port, args.slow))
    return 0


if __name__ == "__main__":
    sys.exit(main())
