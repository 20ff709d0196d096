"""gateway.proxy: the path normaliser table, and a real gateway app forwarding to an echo upstream over
loopback, asserting exactly what arrives upstream and what comes back."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import json
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pytest_aiohttp import AiohttpClient, AiohttpServer

from gateway.proxy import MIB, PRIVATE_CACHE_CONTROL, Forwarder, normalize_path, upstream_client
from gateway.settings import GatewaySettings
from seccore import ConfigError
from tests import factories

SESSION_TOKEN = "session-token-of-jane"
GATEWAY_COOKIE = "sid"
SEEN = web.AppKey("seen", list)  # what the echo upstream received, one dict per request


# --- the echo upstream --------------------------------------------------------------------------------

async def echo(request: web.Request) -> web.Response:
    """Method, raw target, raw headers (exact names, duplicates kept) and body, as JSON."""
    try:
        body = await request.read()
    # The gateway aborted the upload (too large, stalled): an error, or the handler's cancellation.
    except (aiohttp.ClientError, ConnectionError, asyncio.CancelledError) as exc:
        request.app[SEEN].append({"incomplete": repr(exc)})
        raise
    seen = {"method": request.method, "target": request.raw_path, "length": len(body),
            "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in request.raw_headers],
            "body": body.decode("latin-1")}
    request.app[SEEN].append(seen)
    return web.json_response(seen)


async def mirror(request: web.Request) -> web.StreamResponse:
    """Stream the request body straight back, saying how it was framed on arrival."""
    response = web.StreamResponse(headers={
        "X-Seen-Length": request.headers.get("Content-Length", "-"),
        "X-Seen-TE": request.headers.get("Transfer-Encoding", "-")})
    await response.prepare(request)
    async for chunk in request.content.iter_any():
        await response.write(chunk)
    await response.write_eof()
    return response


async def slow(request: web.Request) -> web.Response:
    await asyncio.sleep(1.0)  # the simulated slow backend, not test synchronisation
    return web.Response(text="late")


async def redirect(request: web.Request) -> web.Response:
    return web.Response(status=302, text="moved",
                        headers={"Location": "http://internal.example:8080/elsewhere"})


async def close_connection(request: web.Request) -> web.Response:
    assert request.transport is not None
    request.transport.close()  # the backend dies before answering
    return web.Response(text="never sent")


async def truncated(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    response.content_length = 100
    await response.prepare(request)
    await response.write(b"x" * 10)
    assert request.transport is not None
    request.transport.close()  # promised 100 bytes, delivered 10
    return response


async def with_headers(request: web.Request) -> web.Response:
    response = web.Response(text="ok", headers={
        "Connection": "keep-alive, X-Hop-Listed", "X-Hop-Listed": "secret", "Keep-Alive": "timeout=5",
        "Proxy-Authenticate": "Basic realm=x", "Public": "GET", "Trailer": "X-Checksum",
        "X-Backend": "kept", "Location": "/next"})
    response.set_cookie("a", "1")
    response.set_cookie("b", "2")
    return response


async def gzipped(request: web.Request) -> web.Response:
    return web.Response(body=gzip.compress(b"hello " * 1000),
                        headers={"Content-Encoding": "gzip", "Content-Type": "text/plain"})


async def cached(request: web.Request) -> web.Response:
    """Answer with the Cache-Control that ``?cc=`` names, or none."""
    cache_control = request.query.get("cc")
    return web.Response(text="ok", headers={"Cache-Control": cache_control} if cache_control else {})


def echo_app() -> web.Application:
    app = web.Application()
    app[SEEN] = []
    app.router.add_route("*", "/slow", slow)
    app.router.add_route("*", "/redirect", redirect)
    app.router.add_route("*", "/close", close_connection)
    app.router.add_route("*", "/truncated", truncated)
    app.router.add_route("*", "/headers", with_headers)
    app.router.add_route("*", "/gzip", gzipped)
    app.router.add_route("*", "/mirror", mirror)
    app.router.add_route("*", "/cached", cached)
    app.router.add_route("*", "/{tail:.*}", echo)
    return app


# --- the gateway under test ---------------------------------------------------------------------------

@dataclass(frozen=True)
class GatewayConfig:
    base: str
    hops: int = 0
    max_body: int = 10 * MIB
    timeout: float = 5.0
    bearer: str | None = SESSION_TOKEN
    plain_client: bool = False  # a bare ClientSession instead of upstream_client()
    private: bool = False  # the route needs a login


CONFIG = web.AppKey("config", GatewayConfig)
FORWARDER = web.AppKey("forwarder", Forwarder)


async def gateway_handler(request: web.Request) -> web.StreamResponse:
    """What the route layer will do: normalise, build the upstream URL, forward."""
    config = request.app[CONFIG]
    path = normalize_path(request.rel_url.raw_path)
    if path is None:
        raise web.HTTPBadRequest()
    query = request.rel_url.raw_query_string
    return await request.app[FORWARDER].forward(
        request, upstream_url=config.base + path + (f"?{query}" if query else ""), bearer=config.bearer,
        correlation_id=request.headers.get("X-Correlation-Id", "cid-1"), timeout_seconds=config.timeout,
        strip_cookie_names=(GATEWAY_COOKIE,), private=config.private)


def gateway_app(config: GatewayConfig) -> web.Application:
    async def upstream_ctx(app: web.Application) -> AsyncIterator[None]:
        plain = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) if config.plain_client else None
        async with plain or upstream_client() as client:
            app[FORWARDER] = Forwarder(client, max_request_body=config.max_body,
                                       trusted_proxy_hops=config.hops)
            yield

    app = web.Application()
    app[CONFIG] = config
    app.cleanup_ctx.append(upstream_ctx)
    app.router.add_route("*", "/{tail:.*}", gateway_handler)
    return app


MakeGateway = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest_asyncio.fixture
async def echo_upstream(aiohttp_server: AiohttpServer) -> TestServer:
    # aiohttp's TestServer cancels handlers on disconnect: /slow stops when the gateway gives up.
    return await aiohttp_server(echo_app())


@pytest.fixture
def make_gateway(aiohttp_client: AiohttpClient, echo_upstream: TestServer) -> MakeGateway:
    async def make(**overrides: Any) -> TestClient[Any, Any]:
        base = overrides.pop("base", str(echo_upstream.make_url("")).rstrip("/"))
        return await aiohttp_client(gateway_app(GatewayConfig(base=base, **overrides)))
    return make


def seen(upstream: TestServer) -> list[dict[str, Any]]:
    return upstream.app[SEEN]


def header_map(headers: list[list[str]]) -> dict[str, list[str]]:
    """Raw header pairs → lower-case name → values in order."""
    result: dict[str, list[str]] = {}
    for name, value in headers:
        result.setdefault(name.lower(), []).append(value)
    return result


async def raw_exchange(client: TestClient[Any, Any], head: str, body: bytes = b"") -> tuple[int, bytes]:
    """Send exact request bytes (names, casing, duplicates the aiohttp client would not send as is)."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
    response = await reader.read()  # the request says Connection: close
    writer.close()
    await writer.wait_closed()
    status_head, _, body = response.partition(b"\r\n\r\n")
    while status_head.startswith(b"HTTP/1.1 100 "):  # aiohttp's server answers Expect itself
        status_head, _, body = body.partition(b"\r\n\r\n")
    return int(status_head.split(b" ", 2)[1]), body


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    """A request body without Content-Length: aiohttp sends it chunked."""
    for start in range(0, len(data), size):
        yield data[start:start + size]


# --- normalize_path -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "expected"), [
    pytest.param("/a/b", "/a/b", id="plain"),
    pytest.param("/", "/", id="root"),
    pytest.param("/a/b/", "/a/b/", id="trailing-slash-kept"),
    pytest.param("/echo/a%20b", "/echo/a%20b", id="space-stays-encoded"),
    pytest.param("/a%7eb%41", "/a~bA", id="unreserved-decoded"),
    pytest.param("/caf%c3%a9", "/caf%C3%A9", id="nfc-utf8-upper-hex"),
    pytest.param("/a%25zz", "/a%25zz", id="literal-percent"),
    pytest.param("/a/...", "/a/...", id="three-dots-is-a-name"),
    pytest.param("/sap/opu/odata/sap/SVC;v=2/Items('a')", "/sap/opu/odata/sap/SVC;v=2/Items('a')",
                 id="sap-matrix-param-and-key"),
    pytest.param("/a%3Fb%23c", "/a%3Fb%23c", id="encoded-query-and-fragment-chars-stay-encoded"),
    # refused: traversal in every disguise
    pytest.param("/a/../b", None, id="dotdot"),
    pytest.param("/a/./b", None, id="dot"),
    pytest.param("/a/..", None, id="trailing-dotdot"),
    pytest.param("/a/%2e%2e/b", None, id="encoded-dotdot"),
    pytest.param("/a/%2E./b", None, id="half-encoded-dotdot"),
    pytest.param("/a/%252e%252e/b", None, id="double-encoded-dotdot"),
    pytest.param("/a/%25252e%25252e/b", None, id="triple-encoded-dotdot"),
    pytest.param("/a/..;/b", None, id="tomcat-dotdot-param"),
    pytest.param("/a/%c0%ae%c0%ae/b", None, id="overlong-utf8-dot"),
    pytest.param("/%ef%bc%8e%ef%bc%8e/b", None, id="fullwidth-dots-nfkc"),
    pytest.param("/a%ef%bc%8fb", None, id="fullwidth-solidus-nfkc"),
    pytest.param("/%e2%80%a4%e2%80%a4/b", None, id="one-dot-leader-nfkc"),
    pytest.param("/%ef%ac%81le", None, id="ligature-nfkc"),
    # refused: separators that would split differently
    pytest.param("/a%2fb", None, id="encoded-slash"),
    pytest.param("/a%2Fb", None, id="encoded-slash-upper"),
    pytest.param("/a%252fb", None, id="double-encoded-slash"),
    pytest.param("/a\\b", None, id="backslash"),
    pytest.param("/a/%5cb", None, id="encoded-backslash"),
    pytest.param("/a//b", None, id="empty-segment"),
    pytest.param("//evil.example/x", None, id="leading-double-slash"),
    # refused: bytes and characters that don't belong in a path
    pytest.param("/a%00b", None, id="nul"),
    pytest.param("/a%0d%0aSet-Cookie:x=1", None, id="crlf"),
    pytest.param("/a%09b", None, id="tab"),
    pytest.param("/a%7f", None, id="del"),
    pytest.param("/a%c2%85", None, id="c1-next-line"),
    pytest.param("/a%c2%a0b", None, id="nbsp"),
    pytest.param("/%e2%80%ae", None, id="bidi-override"),
    pytest.param("/a%e2%80%8bb", None, id="zero-width-space"),
    pytest.param("/a%ff", None, id="invalid-utf8"),
    pytest.param("/%ed%a0%80", None, id="utf8-surrogate"),
    pytest.param("/a%25c0%25ae", None, id="double-encoded-overlong"),
    # refused: not an ASCII origin-form path without query
    pytest.param("/caf\u00e9", None, id="raw-non-ascii"),
    pytest.param("a/b", None, id="relative"),
    pytest.param("*", None, id="asterisk-form"),
    pytest.param("http://169.254.169.254/", None, id="absolute-form"),
    pytest.param("/a?x=1", None, id="query-not-stripped"),
    pytest.param("/a#frag", None, id="fragment"),
    pytest.param("", None, id="empty"),
])
def test_normalize_path(raw: str, expected: str | None) -> None:
    assert normalize_path(raw) == expected


def test_normalized_paths_are_fixed_points() -> None:
    for raw in ("/a/b", "/echo/a%20b", "/caf%c3%a9", "/a%25zz", "/x;v=2/Items('a')"):
        canonical = normalize_path(raw)
        assert canonical is not None and normalize_path(canonical) == canonical


# --- request headers ----------------------------------------------------------------------------------

@pytest.mark.asyncio
async def test_request_headers_arrive_scrubbed(make_gateway: MakeGateway, echo_upstream: TestServer) -> None:
    gateway = await make_gateway()  # trusted_proxy_hops=0: nothing forwarded is believed
    status, body = await raw_exchange(gateway, f"""GET /echo/a%20b?x=1&y=%2F&x=2 HTTP/1.1
Host: gw.example
Connection: close, X-Hop-Listed
X-Hop-Listed: secret
Keep-Alive: timeout=5
Proxy-Connection: keep-alive
Proxy-Authorization: Basic cHJveHk6cHc=
TE: trailers
Trailer: X-Checksum
Upgrade: websocket
Public: GET
Authorization: Bearer forged
X-CSRF-Token: 1234
X-Approuter-Authorization: Bearer other
X-Custom-Host: evil.example
X-IAS-Token: ias
SAP-Connectivity-Authentication: Bearer cc
SAP-Connectivity-SCC-Location_ID: loc
X_Forwarded_For: 6.6.6.6
X-Forwarded-For: 7.7.7.7
x-FORWARDED-host: evil.example
X-Forwarded-Proto: https
X-Forwarded-Path: /spoofed
X-Forwarded-Client-Cert: Hash=forged
Forwarded: for=8.8.8.8;proto=https
X-Real-IP: 9.9.9.9
X-Original-URL: /admin
X-Correlationid: spoofed
Expect: 100-continue
Cookie: {GATEWAY_COOKIE}=GATEWAY-SESSION; theme=dark
Cookie: JSESSIONID=backend-session
X-Custom: one
X-Custom: two
Accept: application/xml
User-Agent: raw-test
""")
    assert status == 200, body
    arrived = seen(echo_upstream)[0]
    assert arrived["method"] == "GET"
    assert arrived["target"] == "/echo/a%20b?x=1&y=%2F&x=2"  # path and query untouched, duplicates kept
    assert header_map(arrived["headers"]) == {
        "host": [f"127.0.0.1:{echo_upstream.port}"],
        "accept": ["application/xml"],
        "user-agent": ["raw-test"],
        "x-custom": ["one", "two"],
        "cookie": ["theme=dark; JSESSIONID=backend-session"],
        "x-forwarded-for": ["127.0.0.1"],
        "x-forwarded-proto": ["http"],
        "x-forwarded-host": ["gw.example"],
        "x-forwarded-path": ["/echo/a%20b"],
        "x-correlationid": ["cid-1"],
        "authorization": [f"Bearer {SESSION_TOKEN}"],
    }


@pytest.mark.parametrize(("hops", "client_ip", "proto"), [
    pytest.param(0, "127.0.0.1", "http", id="untrusted-socket-wins"),
    pytest.param(1, "10.0.0.7", "https", id="gorouter-appended-last"),
    pytest.param(2, "203.0.113.9", "https", id="lb-and-gorouter"),
    pytest.param(4, "127.0.0.1", "https", id="fewer-entries-than-hops-falls-back"),
])
@pytest.mark.asyncio
async def test_forwarded_headers_trust_only_the_configured_hops(
        make_gateway: MakeGateway, echo_upstream: TestServer, hops: int, client_ip: str, proto: str) -> None:
    gateway = await make_gateway(hops=hops)
    response = await gateway.get("/echo/x", headers=[
        ("Host", "app.cfapps.example"), ("X-Forwarded-For", "6.6.6.6, 203.0.113.9"),
        ("X-Forwarded-For", "10.0.0.7"), ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "evil.example"), ("X_Forwarded_For", "1.2.3.4")])
    assert response.status == 200
    headers = header_map(seen(echo_upstream)[0]["headers"])
    assert headers["x-forwarded-for"] == [client_ip]
    assert headers["x-forwarded-proto"] == [proto]
    assert headers["x-forwarded-host"] == ["app.cfapps.example"]  # Host, which the gorouter routed on


@pytest.mark.asyncio
async def test_invalid_forwarded_proto_is_ignored(make_gateway: MakeGateway,
                                                  echo_upstream: TestServer) -> None:
    gateway = await make_gateway(hops=1)
    await gateway.get("/echo/x", headers={"X-Forwarded-Proto": "javascript"})
    assert header_map(seen(echo_upstream)[0]["headers"])["x-forwarded-proto"] == ["http"]


@pytest.mark.parametrize(("cookie", "forwarded"), [
    pytest.param(f"{GATEWAY_COOKIE}=s", None, id="only-gateway-cookie"),
    pytest.param(f"theme=dark;{GATEWAY_COOKIE}=s;lang=de", "theme=dark; lang=de", id="middle"),
    pytest.param(f"{GATEWAY_COOKIE} =s; x=1", "x=1", id="space-before-equals"),
    pytest.param(f"x{GATEWAY_COOKIE}=1; {GATEWAY_COOKIE}x=2", f"x{GATEWAY_COOKIE}=1; {GATEWAY_COOKIE}x=2",
                 id="similar-names-pass"),
])
@pytest.mark.asyncio
async def test_gateway_cookie_is_removed_others_pass(
        make_gateway: MakeGateway, echo_upstream: TestServer, cookie: str, forwarded: str | None) -> None:
    gateway = await make_gateway()
    await gateway.get("/echo/x", headers={"Cookie": cookie})
    assert header_map(seen(echo_upstream)[0]["headers"]).get("cookie") == (forwarded and [forwarded])


@pytest.mark.parametrize("plain_client", [False, True], ids=["upstream_client", "bare-session"])
@pytest.mark.asyncio
async def test_nothing_is_invented(make_gateway: MakeGateway, echo_upstream: TestServer,
                                   plain_client: bool) -> None:
    """aiohttp's automatic Accept, Accept-Encoding (gzip for a client that never asked), User-Agent and
    Content-Type are not added on the client's behalf, whatever the session's defaults."""
    gateway = await make_gateway(plain_client=plain_client, bearer=None)
    status, _ = await raw_exchange(gateway, """POST /echo/x HTTP/1.1
Host: gw.example
Connection: close
Content-Length: 2
""", b"{}")
    assert status == 200
    assert sorted(header_map(seen(echo_upstream)[0]["headers"])) == [
        "content-length", "host", "x-correlationid", "x-forwarded-for", "x-forwarded-host",
        "x-forwarded-path", "x-forwarded-proto"]


@pytest.mark.asyncio
async def test_no_bearer_means_no_authorization(make_gateway: MakeGateway, echo_upstream: TestServer) -> None:
    gateway = await make_gateway(bearer=None)
    await gateway.get("/echo/x", headers={"Authorization": "Basic dXNlcjpwdw=="})
    assert "authorization" not in header_map(seen(echo_upstream)[0]["headers"])


# --- bodies -------------------------------------------------------------------------------------------

@pytest.mark.asyncio
async def test_5mb_body_round_trip_with_content_length(make_gateway: MakeGateway) -> None:
    gateway = await make_gateway()
    data = os.urandom(5_000_000)
    response = await gateway.post("/mirror", data=io.BytesIO(data))  # sized, so Content-Length
    assert response.status == 200
    assert response.headers["X-Seen-Length"] == "5000000" and response.headers["X-Seen-TE"] == "-"
    assert response.headers["Transfer-Encoding"] == "chunked"  # streamed back, not buffered
    assert hashlib.sha256(await response.read()).digest() == hashlib.sha256(data).digest()


@pytest.mark.asyncio
async def test_chunked_body_streams_chunked(make_gateway: MakeGateway) -> None:
    gateway = await make_gateway()
    data = os.urandom(3_000_000)
    response = await gateway.put("/mirror", data=chunks(data, 64 * 1024))
    assert response.status == 200
    assert response.headers["X-Seen-Length"] == "-" and response.headers["X-Seen-TE"] == "chunked"
    assert await response.read() == data


@pytest.mark.asyncio
async def test_413_on_content_length_over_limit(make_gateway: MakeGateway, echo_upstream: TestServer) -> None:
    gateway = await make_gateway(max_body=1000)
    response = await gateway.post("/echo/x", data=b"x" * 1001, headers={"Accept": "application/json"})
    assert response.status == 413
    assert await response.json() == {"error": HTTPStatus(413).phrase, "status": 413,
                                     "correlation_id": "cid-1"}
    assert seen(echo_upstream) == []  # refused before anything was sent


@pytest.mark.asyncio
async def test_413_on_chunked_body_over_limit(make_gateway: MakeGateway, echo_upstream: TestServer) -> None:
    gateway = await make_gateway(max_body=1000)
    response = await gateway.post("/echo/x", data=chunks(b"x" * 5000, 500))
    assert response.status == 413
    assert response.headers["x-correlationid"] == "cid-1"
    assert all("incomplete" in entry for entry in seen(echo_upstream))  # never a complete body upstream


@pytest.mark.asyncio
async def test_body_at_the_limit_passes(make_gateway: MakeGateway, echo_upstream: TestServer) -> None:
    gateway = await make_gateway(max_body=1000)
    assert (await gateway.post("/echo/x", data=b"x" * 1000)).status == 200
    assert (await gateway.post("/echo/x", data=chunks(b"y" * 1000, 300))).status == 200
    assert [entry["length"] for entry in seen(echo_upstream)] == [1000, 1000]


# A client that stops sending its body holds a gateway and an upstream connection: the upstream's
# read timeout only starts once the body is out (PRX-15). Each gap below is under the 0.5 s timeout.
@pytest.mark.parametrize(("head", "parts", "status"), [
    pytest.param("Content-Length: 100", [b"x" * 10], 408, id="PRX-15 content-length body stalls"),
    pytest.param("Transfer-Encoding: chunked", [b"a\r\n" + b"x" * 10 + b"\r\n"], 408,
                 id="PRX-15 chunked body stalls"),
    pytest.param("Content-Length: 100", [b"x" * 10] * 10, 200, id="slow but steady body passes"),
])
@pytest.mark.asyncio
async def test_a_stalled_request_body_is_408_and_never_reaches_the_upstream_whole(
        make_gateway: MakeGateway, echo_upstream: TestServer, head: str, parts: list[bytes],
        status: int) -> None:
    gateway = await make_gateway(timeout=0.5)
    reader, writer = await asyncio.open_connection(gateway.host, gateway.port)
    writer.write(f"POST /echo/upload HTTP/1.1\r\nHost: gw\r\n{head}\r\nConnection: close\r\n\r\n".encode())
    started = time.monotonic()
    for part in parts:
        writer.write(part)
        await writer.drain()
        await asyncio.sleep(0.05)  # the client's pace, not test synchronisation
    # The head only: after a 408 aiohttp still lingers (up to 10 s) for the rest of the body.
    answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)  # a hang: the gateway waited on
    writer.close()
    assert int(answer.split(b" ", 2)[1]) == status, answer
    if status == 408:
        assert time.monotonic() - started < 3
        for _ in range(100):  # the upstream notices the closed connection a little later
            if seen(echo_upstream):
                break
            await asyncio.sleep(0.02)
        assert seen(echo_upstream) and all("incomplete" in entry for entry in seen(echo_upstream))
    else:
        assert [entry["length"] for entry in seen(echo_upstream)] == [100]


# --- responses ----------------------------------------------------------------------------------------

# PRX-18: a shared cache, or the next user of the browser, must not get a logged-in user's answer.
@pytest.mark.parametrize(("bearer", "private", "upstream_value", "expected"), [
    pytest.param(SESSION_TOKEN, False, None, PRIVATE_CACHE_CONTROL, id="PRX-18 token forwarded, none set"),
    pytest.param(None, True, None, PRIVATE_CACHE_CONTROL, id="PRX-18 login route without token"),
    pytest.param(SESSION_TOKEN, False, "public, max-age=60", "public, max-age=60", id="backend's value kept"),
    pytest.param(SESSION_TOKEN, True, "no-cache", "no-cache", id="backend's no-cache kept"),
    pytest.param(None, False, None, None, id="public route: nothing added"),
    pytest.param(None, False, "max-age=600", "max-age=600", id="public route: backend's value passes"),
])
@pytest.mark.asyncio
async def test_an_authenticated_answer_without_cache_control_is_not_stored(
        make_gateway: MakeGateway, bearer: str | None, private: bool, upstream_value: str | None,
        expected: str | None) -> None:
    gateway = await make_gateway(bearer=bearer, private=private)
    response = await gateway.get("/cached", params={"cc": upstream_value} if upstream_value else None)
    assert response.status == 200
    assert response.headers.getall("Cache-Control", []) == ([expected] if expected else [])


@pytest.mark.asyncio
async def test_redirect_is_passed_on_not_followed(make_gateway: MakeGateway,
                                                  echo_upstream: TestServer) -> None:
    gateway = await make_gateway()
    response = await gateway.get("/redirect", allow_redirects=False)
    assert response.status == 302
    assert response.headers["Location"] == "http://internal.example:8080/elsewhere"
    assert await response.text() == "moved"
    assert seen(echo_upstream) == []  # the echo route behind any redirect target was never hit


@pytest.mark.asyncio
async def test_response_headers_copied_minus_hop_by_hop(make_gateway: MakeGateway) -> None:
    gateway = await make_gateway()
    response = await gateway.get("/headers")
    assert response.status == 200
    names = {name.lower() for name in response.headers}
    assert not names & {"x-hop-listed", "keep-alive", "proxy-authenticate", "public", "trailer"}
    assert response.headers.get("Connection") in (None, "keep-alive")  # aiohttp's own, not the backend's
    assert response.headers["X-Backend"] == "kept" and response.headers["Location"] == "/next"
    assert response.headers.getall("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/"]
    assert await response.text() == "ok"


@pytest.mark.asyncio
async def test_content_encoding_passes_through(make_gateway: MakeGateway, echo_upstream: TestServer) -> None:
    gateway = await make_gateway()
    response = await gateway.get("/gzip", headers={"Accept-Encoding": "gzip"}, auto_decompress=False)
    assert response.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(await response.read()) == b"hello " * 1000


@pytest.mark.asyncio
async def test_head_keeps_length_without_body(make_gateway: MakeGateway) -> None:
    gateway = await make_gateway()
    response = await gateway.head("/echo/x")
    assert response.status == 200 and int(response.headers["Content-Length"]) > 0
    assert await response.read() == b""


@pytest.mark.asyncio
async def test_truncated_upstream_body_is_not_passed_off_as_complete(make_gateway: MakeGateway) -> None:
    gateway = await make_gateway()
    response = await gateway.get("/truncated")
    assert response.status == 200
    with pytest.raises(aiohttp.ClientPayloadError):
        await asyncio.wait_for(response.read(), 5)  # a hang here means the socket was not closed


# --- upstream failures (fault F-25) -------------------------------------------------------------------

@pytest.mark.asyncio
async def test_502_when_connection_refused(make_gateway: MakeGateway) -> None:
    gateway = await make_gateway(base=f"http://127.0.0.1:{unused_port()}")
    response = await gateway.get("/x", headers={"X-Correlation-Id": "<corr&42>"})
    assert response.status == 502
    assert response.headers["Content-Type"].startswith("text/html")
    assert response.headers["x-correlationid"] == "<corr&42>"
    assert "Correlation ID: &lt;corr&amp;42&gt;" in await response.text()  # escaped, never raw


@pytest.mark.asyncio
async def test_502_as_json_when_preferred(make_gateway: MakeGateway) -> None:
    gateway = await make_gateway(base=f"http://127.0.0.1:{unused_port()}")
    response = await gateway.post("/x", data=b"{}", headers={"Accept": "application/json, text/html"})
    assert response.status == 502
    assert json.loads(await response.text()) == {"error": "Bad Gateway", "status": 502,
                                                 "correlation_id": "cid-1"}


@pytest.mark.asyncio
async def test_502_when_upstream_closes_the_connection(make_gateway: MakeGateway) -> None:
    gateway = await make_gateway()
    response = await gateway.get("/close")
    assert response.status == 502


@pytest.mark.asyncio
async def test_504_when_upstream_is_slow(make_gateway: MakeGateway) -> None:
    gateway = await make_gateway(timeout=0.2)
    started = time.monotonic()
    response = await gateway.get("/slow")
    assert response.status == 504
    assert time.monotonic() - started < 0.9  # well before the backend's 1 s answer
    assert "Gateway Timeout" in await response.text()


# --- construction -------------------------------------------------------------------------------------

def destination_settings(**destination: object) -> GatewaySettings:
    return GatewaySettings.from_env({
        "VCAP_SERVICES": json.dumps(factories.vcap_services()), "SESSION_SECRET": "s" * 48,
        "destinations": json.dumps([{"name": "frontapp", "url": "http://127.0.0.1:8080", **destination}])})


def test_prx15_the_destination_timeout_is_approuters_30_s() -> None:
    assert destination_settings().destinations["frontapp"].timeout_seconds == 30.0
    assert destination_settings(timeout=2500).destinations["frontapp"].timeout_seconds == 2.5


@pytest.mark.parametrize("timeout", [
    pytest.param(0, id="PRX-15 0: approuter's 'no timeout'"), pytest.param(-1, id="negative"),
    pytest.param("30000", id="a string"), pytest.param(True, id="a boolean"),
    pytest.param(1.5, id="a fraction"), pytest.param(None, id="null"),
])
def test_prx15_a_destination_without_a_timeout_stops_the_start(timeout: object) -> None:
    """A backend that never answers would hold the request and an upstream connection for ever."""
    with pytest.raises(ConfigError, match="'timeout' is milliseconds, a positive number"):
        destination_settings(timeout=timeout)


@pytest.mark.asyncio
async def test_client_with_a_cookie_jar_is_refused() -> None:
    async with aiohttp.ClientSession() as client:
        with pytest.raises(ValueError, match="DummyCookieJar"):
            Forwarder(client)
