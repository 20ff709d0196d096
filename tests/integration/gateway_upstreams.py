"""Small servers for gateway tests, each on loopback in a thread with its own event loop, so
that module-scoped fixtures can start them once and gateway processes can reach them:

* ``EchoUpstream``: the gateway's destination; answers every request with its method, raw
  path and headers as JSON and records what it saw, so a test sees exactly what was forwarded.
* ``RoundRobinProxy``: one public origin in front of several gateway instances, alternating
  between them (or pinned to one), passing ``Host`` and cookies through unchanged.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Sequence
from typing import Any, Self

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from tests.integration.processes import free_port

START_DEADLINE_S = 10.0
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "te", "trailer", "trailers",
                         "transfer-encoding", "upgrade", "content-length"})


class BackgroundServer:
    """An aiohttp application on ``127.0.0.1:port``, served by a loop in a thread of its own."""

    def __init__(self, app: web.Application, port: int | None = None) -> None:
        self.app = app
        self.port = port or free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"server-{self.port}",
                                        daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(START_DEADLINE_S)
        return self

    async def _start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(START_DEADLINE_S)
        asyncio.run_coroutine_threadsafe(self._loop.shutdown_asyncgens(), self._loop).result(START_DEADLINE_S)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(START_DEADLINE_S)
        self._loop.close()


class EchoUpstream(BackgroundServer):
    """Answers ``{"method", "path", "headers": [[name, value], ...]}``; ``seen`` keeps them all."""

    def __init__(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._echo)
        super().__init__(app)
        self.seen: list[dict[str, Any]] = []

    async def _echo(self, request: web.Request) -> web.Response:
        body = await request.read()
        record = {"method": request.method, "path": request.raw_path,
                  "headers": [[name, value] for name, value in request.headers.items()],
                  "body": body.decode("latin-1")}
        self.seen.append(record)
        return web.json_response(record)


def headers_of(record: dict[str, Any]) -> CIMultiDict[str]:
    """The headers an echo record shows, case-insensitively."""
    return CIMultiDict((name, value) for name, value in record["headers"])


class RoundRobinProxy(BackgroundServer):
    """Alternates requests between ``ports`` (``pin`` one to send all there); ``served`` lists
    the port each request went to. Hop-by-hop headers are dropped, everything else passes."""

    def __init__(self, ports: Sequence[int], port: int) -> None:
        app = web.Application()
        app.cleanup_ctx.append(self._client_ctx)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        super().__init__(app, port)
        self.ports = list(ports)
        self.pin: int | None = None
        self.served: list[int] = []
        self._turn = 0
        self._client: aiohttp.ClientSession | None = None

    def reset(self) -> None:
        self.pin, self._turn = None, 0
        self.served.clear()

    async def _client_ctx(self, _: web.Application) -> AsyncIterator[None]:
        # No keep-alive: a killed instance leaves no pooled connection behind to fail on.
        self._client = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(force_close=True), cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False, skip_auto_headers=("Accept", "Accept-Encoding", "User-Agent"))
        yield
        await self._client.close()

    async def _forward(self, request: web.Request) -> web.Response:
        port = self.pin if self.pin is not None else self.ports[self._turn % len(self.ports)]
        self._turn += 1
        self.served.append(port)
        headers = CIMultiDict((k, v) for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP)
        body = await request.read()
        assert self._client is not None
        async with self._client.request(
                request.method, URL(f"http://127.0.0.1:{port}{request.raw_path}", encoded=True),
                headers=headers, data=body or None, allow_redirects=False) as answer:
            content = await answer.read()
            back = CIMultiDict((k, v) for k, v in answer.headers.items() if k.lower() not in _HOP_BY_HOP)
            return web.Response(status=answer.status, body=content, headers=back)
