"""Forwarding: make a request path safe to match routes on, then stream the request to its upstream
and the answer back (approuter's ``lib/backend-request`` and request handler, approuter.md §2.10).

What ``Forwarder(trusted_proxy_hops=N)`` believes of ``X-Forwarded-*`` (ProxyFix semantics; N is a
deployment fact, and a count that is too high lets clients choose their address):

* ``N = 0``: nothing. Incoming ``X-Forwarded-*``/``Forwarded`` are dropped; client and scheme come
  from the socket.
* ``N >= 1``: N proxies (CF: the gorouter, plus the platform load balancer if it appends too) each
  appended their peer to ``X-Forwarded-For``, so the N-th entry from the right is the client and
  entries further left are the client's own claims, ignored. ``X-Forwarded-Proto``: the rightmost
  value (set by the nearest proxy), if ``http`` or ``https``.
* ``X-Forwarded-Host`` is never believed: the gorouter neither sets nor checks it, but it routed on
  ``Host``, so ``Host`` is one of the app's routes (cf. approuter's ``ENABLE_X_FORWARDED_HOST_VALIDATION``).
  Upstream gets ``request.host``: the authority of an absolute-form target when there is one (RFC 9112
  §3.2.2, PRX-12), else ``Host``; the value the gateway checked, never a ``Host`` it ignored.

Upstream gets one ``X-Forwarded-For`` value, the resolved client (approuter passes the client's list
through), so a backend that trusts one hop (us) is never handed a spoofed entry.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import unicodedata
from collections.abc import AsyncIterator, Iterable, Sequence
from functools import lru_cache
from http import HTTPStatus
from urllib.parse import quote, unquote

import aiohttp
from aiohttp import hdrs, web
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

__all__ = ["HEADERS_TO_REMOVE", "HOP_BY_HOP", "PRIVATE_CACHE_CONTROL", "VERSION_HEADERS", "Forwarder",
           "error_response", "normalize_path", "upstream_client"]

log = logging.getLogger(__name__)

MIB = 1024 * 1024
CONNECT_TIMEOUT_SECONDS = 5.0
# RFC 3986 pchar minus the percent sign, plus "/": what may stay literal in a forwarded path.
SAFE_PATH_CHARS = "/:@!$&'()*+,;=-._~"

# RFC 9110 §7.6.1 plus approuter's list ("public" is RFC 2068's); "proxy-*" is handled as a prefix.
HOP_BY_HOP = frozenset({"connection", "keep-alive", "public", "te", "trailer", "trailers",
                        "transfer-encoding", "upgrade"})
# approuter 22.0.2/23.0.0 HEADERS_TO_REMOVE: credentials meant for approuter itself, never for a backend.
HEADERS_TO_REMOVE = frozenset({"x-approuter-authorization", "x-custom-host", "x-ias-token",
                               "proxy-authorization", "sap-connectivity-authentication",
                               "sap-connectivity-scc-location_id"})
# Headers we replace with our own values (or that let a backend reroute the path, e.g. IIS/Symfony
# X-Original-URL), the client's credentials, and framing we redo ourselves (Content-Length, Expect:
# aiohttp's server already answered 100-continue).
_REQUEST_DROP = HOP_BY_HOP | HEADERS_TO_REMOVE | frozenset({
    "host", "authorization", "x-csrf-token", "forwarded", "x-real-ip", "x-original-url", "x-original-uri",
    "x-rewrite-url", "x-correlationid", "content-length", "expect"})
_DROP_PREFIXES = ("proxy-", "x-forwarded-")
# Without these aiohttp would invent Accept/User-Agent/Content-Type, and ask for gzip on behalf of a client
# that never did -- and with auto_decompress=False that client would get bytes it cannot read.
_SKIP_AUTO_HEADERS = frozenset({hdrs.ACCEPT, hdrs.ACCEPT_ENCODING, hdrs.USER_AGENT, hdrs.CONTENT_TYPE})
# Product and version banners (ASVS 5 13.4.6): they tell an attacker which CVEs to try and a browser nothing.
VERSION_HEADERS = frozenset({"server", "x-powered-by", "x-aspnet-version", "x-aspnetmvc-version"})
_RESPONSE_DROP = HOP_BY_HOP | VERSION_HEADERS
#: For an answer to a logged-in user that says nothing about caching (PRX-18, ASVS 5 14.2.2): heuristic
#: caching (RFC 9111 §4.2.2) would let a shared cache or the next user of the browser have it.
PRIVATE_CACHE_CONTROL = "private, no-store"
# A cookie with one of these prefixes is still another cookie to the browser, but a backend setting
# "__Host-<our name>" is as clearly after our session as one setting the name itself.
_COOKIE_PREFIXES = ("__Host-", "__Secure-")


def normalize_path(raw_path: str) -> str | None:
    """Return the canonical, re-encoded form of a raw request path, or ``None`` to refuse it (400).

    Pass ``request.rel_url.raw_path`` (still percent-encoded, no query); never ``request.path``, which
    aiohttp has already decoded (``%2F`` becomes ``/``). Routes are matched on the returned value and the
    same value is forwarded, so the gateway and the backend cannot disagree about what was asked for.
    Refused: anything but an ASCII origin-form path; ``%2F``/``%5C``/``\\``; double (or deeper) encoding;
    invalid or overlong UTF-8; control, format (bidi, zero-width), separator and private-use characters;
    text that NFKC would change (full-width ``．．``); ``.``/``..`` segments, also as ``..;param``
    (Tomcat); empty segments (``//``). A trailing ``/`` is kept.
    """
    if not raw_path.startswith("/") or not raw_path.isascii() or "?" in raw_path or "#" in raw_path:
        return None
    path = raw_path
    if "%" in raw_path:
        try:
            path = unquote(raw_path, errors="strict")
            # Decoding is iterated to see whether it is stable, but only once is accepted: the backend
            # decodes exactly once, so a second round that changes anything (%252e -> %2e -> .) means we
            # would match one path and the backend would serve another (approuter 23.0.0 "multi-encoded").
            if "%" in path and unquote(path, errors="strict") != path:
                return None
        except UnicodeDecodeError:  # strict UTF-8 refuses overlong (%c0%ae) and surrogate sequences
            return None
        if path.count("/") != raw_path.count("/"):  # %2F would merge or split segments differently
            return None
    # isprintable() is False for Unicode categories C* and Z* except the ASCII space: NUL, CR/LF, DEL,
    # C1, U+202E (bidi), U+200B, NBSP, U+2028 ...
    if "\\" in path or not path.isprintable():
        return None
    # Refuse rather than normalise: matching on the NFKC form while the backend sees another one is exactly
    # the lookalike bypass approuter 23.0.0 fixed; ASCII is always NFKC, so most requests skip this.
    if not path.isascii() and not unicodedata.is_normalized("NFKC", path):
        return None
    # "//" is refused, not collapsed: servers disagree about it (nginx merge_slashes, Spring collapse,
    # Node/Express keep), a route like ^/admin/ does not match //admin/, and rewriting the client's path
    # silently is worse than a 400 that browsers never trigger.
    if "//" in path:
        return None
    if "/." in path:  # only then can a dot segment exist
        for segment in path.split("/"):
            if segment.partition(";")[0] in (".", ".."):
                return None
    return quote(path, safe=SAFE_PATH_CHARS)


def upstream_client(*, limit: int = 1000) -> aiohttp.ClientSession:
    """A pooled upstream client fit for :class:`Forwarder` (create it inside the running loop)."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit), cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False, skip_auto_headers=_SKIP_AUTO_HEADERS)


def error_response(request: web.Request, status: int, correlation_id: str) -> web.Response:
    """A short error page, JSON when the client prefers it, carrying the correlation id."""
    phrase = HTTPStatus(status).phrase
    if _prefers_json(request.headers.get(hdrs.ACCEPT, "")):
        body = json.dumps({"error": phrase, "status": status, "correlation_id": correlation_id})
        content_type = "application/json"
    else:
        title = f"{status} {phrase}"
        body = (f"<!DOCTYPE html><html><head><title>{title}</title></head><body><h1>{title}</h1>"
                f"<p>Correlation ID: {html.escape(correlation_id)}</p></body></html>")
        content_type = "text/html"
    response = web.Response(status=status, text=body, content_type=content_type,
                            headers={"x-correlationid": correlation_id, hdrs.CACHE_CONTROL: "no-store"})
    if request.body_exists and not request.content.at_eof():
        # Don't let aiohttp drain (up to 10 s) a body nobody will read; close the connection instead.
        response.force_close()
    return response


class Forwarder:
    """Stream requests to upstreams over one pooled client (approuter's request handler)."""

    def __init__(self, client: aiohttp.ClientSession, *, max_request_body: int = 10 * MIB,
                 trusted_proxy_hops: int = 1) -> None:
        if not isinstance(client.cookie_jar, aiohttp.DummyCookieJar):
            # A real jar stores user A's backend Set-Cookie and sends it with user B's next request.
            raise ValueError("the upstream client must use aiohttp.DummyCookieJar (see upstream_client)")
        if max_request_body < 0 or trusted_proxy_hops < 0:
            raise ValueError("max_request_body and trusted_proxy_hops must not be negative")
        self._client = client
        self._max_body = max_request_body
        self._hops = trusted_proxy_hops
        # Passing skip_auto_headers costs a set per request; skip it when the session already does.
        self._skip = None if _SKIP_AUTO_HEADERS.issubset(client.skip_auto_headers) else _SKIP_AUTO_HEADERS

    async def forward(self, request: web.Request, *, upstream_url: str, bearer: str | None,
                      correlation_id: str, timeout_seconds: float,
                      strip_cookie_names: Iterable[str], private: bool = False) -> web.StreamResponse:
        """Send ``request`` to ``upstream_url`` and stream the answer back.

        :param upstream_url: destination URL + rewritten path + raw query, already percent-encoded (it
            is sent as is, without yarl re-quoting or dot-segment removal).
        :param timeout_seconds: how long the upstream may stay silent, and the client too while it
            sends its body (no total: bytes must keep coming, either way).
        :param strip_cookie_names: the gateway's own cookies, removed from ``Cookie``; others pass, and
            a backend ``Set-Cookie`` for one of them is dropped from the response.
        :param private: the route needs a login. Then, as with a ``bearer``, a response without
            ``Cache-Control`` gets :data:`PRIVATE_CACHE_CONTROL`; a backend's own value is kept.
        :returns: the streamed upstream response (redirects are passed on, not followed, a ``Location``
            on the upstream's origin made relative), 408 when the client's body stalls, 413 when it
            exceeds the limit, 502 when the upstream cannot be reached, 504 when it is too slow.
        """
        length = request.content_length
        if length is not None and length > self._max_body:
            return error_response(request, 413, correlation_id)
        own_cookies = frozenset(strip_cookie_names)  # read twice: request and response
        target = URL(upstream_url, encoded=True)
        headers = self._upstream_headers(request, bearer, correlation_id, own_cookies)
        body: _RequestBody | None = None
        if request.body_exists:
            # A chunked body is counted while it streams (the server's parser already stops at a
            # Content-Length). Either way the client must keep sending: the upstream's read timeout
            # only starts once the body is out, so a stalled upload would hold both connections.
            body = _RequestBody(request.content, self._max_body, timeout_seconds)
            if length is not None:
                headers[hdrs.CONTENT_LENGTH] = str(length)
        try:
            upstream = await self._client.request(
                request.method, target, headers=headers, data=body,
                allow_redirects=False, auto_decompress=False, skip_auto_headers=self._skip,
                timeout=_timeout(timeout_seconds))
        except (TimeoutError, aiohttp.ClientError) as exc:  # aiohttp's timeouts subclass TimeoutError
            # A body we gave up on (408, 413) is why the upstream request broke, if it is one.
            status = (body.failure if body else None) or (504 if isinstance(exc, TimeoutError) else 502)
            return self._failed(request, status, correlation_id, exc)
        try:
            if body is not None and body.failure:  # the upstream answered before we gave up
                upstream.close()
                return error_response(request, body.failure, correlation_id)
            return await self._relay(request, upstream, correlation_id, target, own_cookies,
                                     private or bearer is not None)
        finally:
            upstream.release()  # closes rather than pools the connection if the body was not read

    def _upstream_headers(self, request: web.Request, bearer: str | None, correlation_id: str,
                          strip_cookie_names: Iterable[str]) -> CIMultiDict[str]:
        incoming = request.headers
        listed = _connection_tokens(incoming)
        out: CIMultiDict[str] = CIMultiDict()
        cookies: list[str] = []
        for name, value in incoming.items():
            lname = name.lower()
            # "_" variants (X_Forwarded_For) are one name to WSGI/CGI backends: oauth2-proxy CVE-2025-64484.
            if lname in _REQUEST_DROP or lname in listed or "_" in lname or lname.startswith(_DROP_PREFIXES):
                continue
            if lname == "cookie":
                cookies.append(value)
            else:
                out.add(name, value)
        if cookies and (cookie := _strip_cookies(cookies, strip_cookie_names)):
            out[hdrs.COOKIE] = cookie
        client, proto = request.remote, request.scheme
        if self._hops:
            client = _from_right(incoming.getall(hdrs.X_FORWARDED_FOR, ()), self._hops) or client
            forwarded_proto = (_from_right(incoming.getall(hdrs.X_FORWARDED_PROTO, ()), 1) or "").lower()
            if forwarded_proto in ("http", "https"):
                proto = forwarded_proto
        if client:
            out[hdrs.X_FORWARDED_FOR] = client
        out[hdrs.X_FORWARDED_PROTO] = proto
        if host := request.host:  # see the module docstring
            out[hdrs.X_FORWARDED_HOST] = host
        out["x-forwarded-path"] = request.rel_url.raw_path
        out["x-correlationid"] = correlation_id
        if bearer:
            out[hdrs.AUTHORIZATION] = f"Bearer {bearer}"
        return out

    async def _relay(self, request: web.Request, upstream: aiohttp.ClientResponse, correlation_id: str,
                     target: URL, own_cookies: frozenset[str], private: bool) -> web.StreamResponse:
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        listed = _connection_tokens(upstream.headers)
        for name, value in upstream.headers.items():
            lname = name.lower()
            if lname in _RESPONSE_DROP or lname in listed or lname.startswith("proxy-"):
                continue
            if lname == "location":
                value = _gateway_location(value, target)
            elif lname == "set-cookie" and (clash := _own_cookie(value, own_cookies)):
                # Approuter's REMOVE_CLASHING_BACKEND_SESSION_COOKIE, always on: a backend must not be
                # able to overwrite or expire the gateway's session (SES-16). The value stays unlogged.
                log.warning("dropped a backend Set-Cookie for the gateway's cookie %r (correlation id %s)",
                            clash, correlation_id)
                continue
            response.headers.add(name, value)  # add, not set: repeated Set-Cookie stay separate
        if private and hdrs.CACHE_CONTROL not in response.headers:
            response.headers[hdrs.CACHE_CONTROL] = PRIVATE_CACHE_CONTROL
        try:
            # prepare() is inside: a client that left while the backend worked is no server error.
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
        except (aiohttp.ClientError, ConnectionResetError, TimeoutError) as exc:
            # The status line is out, so no 502 any more. Closing the socket makes the truncation visible
            # (a clean chunked end would pass a half body off as complete); closing the upstream
            # connection propagates a client disconnect to the backend.
            log.warning("stream aborted (correlation id %s): %r", correlation_id, exc)
            upstream.close()
            if (transport := request.transport) is not None:
                transport.close()
            return response
        await response.write_eof()
        return response

    @staticmethod
    def _failed(request: web.Request, status: int, correlation_id: str, exc: Exception) -> web.Response:
        log.warning("upstream request failed with %d (correlation id %s): %r", status, correlation_id, exc)
        return error_response(request, status, correlation_id)


class _RequestBody:
    """The client's request body as an async iterable that fails once it passes ``limit`` bytes
    (``failure`` 413) or no byte came for ``idle_seconds`` (``failure`` 408)."""

    __slots__ = ("_content", "_idle", "_left", "failure")

    def __init__(self, content: aiohttp.StreamReader, limit: int, idle_seconds: float) -> None:
        self._content = content
        self._left = limit
        self._idle = idle_seconds
        self.failure: int | None = None

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            try:
                async with asyncio.timeout(self._idle):
                    chunk = await self._content.readany()
            except TimeoutError:
                self.failure = 408
                raise _BodyFailed from None
            if not chunk:
                return
            self._left -= len(chunk)
            if self._left < 0:
                self.failure = 413
                raise _BodyFailed
            # On _BodyFailed aiohttp raises a ClientConnectionError and closes the upstream
            # connection, so the backend never sees a complete body that we refused.
            yield chunk


class _BodyFailed(Exception):
    """The request body passed the limit or stalled."""


@lru_cache(maxsize=64)
def _timeout(read_seconds: float) -> aiohttp.ClientTimeout:
    # No total: a long download is fine as long as bytes keep coming; ClientTimeout is frozen, so shared.
    return aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT_SECONDS, sock_read=read_seconds)


def _connection_tokens(headers: CIMultiDictProxy[str]) -> frozenset[str]:
    """The header names a ``Connection`` header declares hop-by-hop (RFC 9110 §7.6.1)."""
    values = headers.getall(hdrs.CONNECTION, ())
    if not values:
        return frozenset()
    return frozenset(token.strip().lower() for value in values for token in value.split(","))


def _from_right(values: Sequence[str], position: int) -> str | None:
    """The ``position``-th comma-separated item from the right over all header lines, if present."""
    if not values:
        return None
    items = (values[0] if len(values) == 1 else ",".join(values)).split(",")
    if len(items) < position:
        return None
    return items[-position].strip() or None


def _strip_cookies(values: list[str], names: Iterable[str]) -> str | None:
    """``Cookie`` without the named cookies; several header lines are joined (RFC 6265 §5.4)."""
    drop = names if isinstance(names, frozenset | set) else frozenset(names)
    if not drop:
        return "; ".join(values)
    kept = [pair for value in values for pair in (part.strip() for part in value.split(";"))
            if pair and pair.partition("=")[0].rstrip() not in drop]
    return "; ".join(kept) or None


def _gateway_location(location: str, upstream: URL) -> str:
    """``location`` as a path of the gateway if it points at the upstream's own origin (PRX-14).

    A backend that knows itself as ``http://10.0.3.7:8080`` would otherwise send the browser to an
    address it cannot reach and tell it the internal topology. Other origins and relative references
    pass unchanged. A scheme-relative ``//host:port/x`` counts as the upstream's when host and port are.
    """
    try:
        url = URL(location, encoded=True)
    except ValueError:  # not a URL yarl can read: nothing we could rewrite
        return location
    if url.host is None:  # a relative reference already
        return location
    if not url.scheme:
        url = url.with_scheme(upstream.scheme)
    if (url.scheme, url.host, url.port) != (upstream.scheme, upstream.host, upstream.port):
        return location
    relative = url.raw_path_qs + (f"#{url.raw_fragment}" if url.raw_fragment else "")
    # One leading "/" only: "//evil.example/x" (or "/\evil.example", which browsers read the same way)
    # would be another host once it is relative to us, an open redirect.
    return "/" + relative.lstrip("/\\")


def _own_cookie(set_cookie: str, own: frozenset[str]) -> str | None:
    """The name of the gateway cookie that this ``Set-Cookie`` would overwrite, if it would."""
    # The name as a browser reads it (RFC 6265 §5.2): before the first "=" of the first ";" part,
    # whitespace trimmed, compared case-sensitively. A pair without "=" is a nameless cookie to
    # RFC 6265bis browsers, but it comes back as "Cookie: <our name>", so it counts as ours too
    # (as in _strip_cookies).
    name = set_cookie.partition(";")[0].partition("=")[0].strip()
    if any(name.removeprefix(prefix) in own for prefix in ("", *_COOKIE_PREFIXES)):
        return name
    return None


def _prefers_json(accept: str) -> bool:
    # Order of appearance, not q-values: browsers list text/html first, XHR/fetch clients list JSON.
    json_at = accept.find("json")
    if json_at < 0:
        return False
    html_at = accept.find("html")
    return html_at < 0 or json_at < html_at
