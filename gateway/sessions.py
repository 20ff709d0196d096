"""Server-side sessions: the store, the signed session cookie and per-session refresh locks.

A session is a JSON-serialisable dict (tokens, expiry, CSRF secret, return-to URL, user
info) kept server-side under a random id; the browser only holds the signed id. Two stores:

* ``MemoryStore``: one process, lost on restart. Cookies are then signed with a random
  per-process secret, as approuter does by default (approuter.md §2.6).
* ``RedisStore``: shared by every instance (SAP BTP "redis-cache" binding or
  ``SESSION_STORE_URL``), with a shared ``SESSION_SECRET``, so a restart, an evacuated cell
  or a scale-out does not log everybody out (approuter.md §4 pain point 1).

Expiry is an idle timeout that slides only when the caller says so: ``get`` never extends a
session, the request handler calls ``touch`` (or ``set`` after a change) once per request.
A store failure raises ``StoreUnavailable``: the caller answers 503 and never treats the
failure as "no session" (security catalogue F-26).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable
from urllib.parse import unquote, urlsplit

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import RedisError

from seccore.errors import ConfigError, SecurityError

__all__ = [
    "COOKIE_ATTRIBUTES", "COOKIE_NAME", "MAX_MEMORY_SESSIONS", "MemoryStore", "RedisStore",
    "RefreshLocks", "SessionStore", "StoreUnavailable", "new_session_id", "redis_store_from_env",
    "session_secret_from_env", "sign_session_id", "unsign_session_id",
]

COOKIE_NAME = "frontrouter_session"
#: keyword arguments for aiohttp's ``set_cookie``: never readable by scripts, never sent over
#: plain http, not sent on cross-site subrequests (catalogue SES-02)
COOKIE_ATTRIBUTES: Mapping[str, Any] = MappingProxyType(
    {"secure": True, "httponly": True, "samesite": "Lax", "path": "/"})
#: Sessions one process keeps. A session holds about 10 KB (access, refresh and id token), so
#: the bound caps the memory store near 100 MB; past it the least recently active user logs in again.
MAX_MEMORY_SESSIONS = 10_000
#: ``SESSION_SECRET`` must have at least this many characters
MIN_SECRET_CHARS = 32
REDIS_LABEL = "redis-cache"
CONNECT_TIMEOUT_S = 2.0
COMMAND_TIMEOUT_S = 2.0
PING_TIMEOUT_S = 1.0
#: redis-py 8 retries 10 times by default; a dead store must turn into a 503 within seconds
REDIS_RETRIES = 1

_SID = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32); also an unpadded SHA-256 MAC
_SIGN_CONTEXT = b"frontrouter session id v1\x00"  # keeps this MAC apart from any other use of the secret


class StoreUnavailable(SecurityError):
    """The session store did not answer; the request fails closed (503)."""

    status = 503
    code = "session_store_unavailable"
    fix = "the session store (Redis) is unreachable; retry in a moment"
    retry_after = 5


@runtime_checkable
class SessionStore(Protocol):
    """Where sessions live. Every method may raise ``StoreUnavailable``."""

    async def get(self, sid: str) -> dict[str, Any] | None:
        """The session, or None when unknown or expired; does not extend it."""

    async def set(self, sid: str, data: dict[str, Any], ttl_seconds: int) -> None:
        """Store ``data``; it expires ``ttl_seconds`` after this call."""

    async def touch(self, sid: str, ttl_seconds: int) -> bool:
        """Restart the idle timer; False when the session is already gone."""

    async def delete(self, sid: str) -> None:
        """Forget the session (logout); no error when unknown."""

    async def ping(self) -> bool:
        """Readiness: True when the store answers."""

    async def close(self) -> None:
        """Release connections."""


def _ttl(ttl_seconds: int) -> int:
    if isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int) or ttl_seconds <= 0:
        raise ValueError(f"ttl_seconds must be a positive int, got {ttl_seconds!r}")
    return ttl_seconds


class MemoryStore:
    """Sessions in this process, with idle expiry and at most ``max_sessions`` entries.

    Values are kept as JSON text, as in Redis: a caller that changes the dict it got must
    ``set`` it again, and a value that Redis could not hold fails here too. No method awaits
    while it changes the dict, so coroutines of one loop cannot interleave; the lock also
    covers callers on other threads.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 max_sessions: int = MAX_MEMORY_SESSIONS) -> None:
        self._clock = clock
        self._max = max_sessions
        #: sid -> (expires at, JSON); ordered by last set/touch, oldest first
        self._entries: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, sid: str) -> dict[str, Any] | None:
        with self._lock:
            entry = self._entries.get(sid)
            if entry is not None and entry[0] <= self._clock():
                del self._entries[sid]
                entry = None
        return None if entry is None else json.loads(entry[1])

    async def set(self, sid: str, data: dict[str, Any], ttl_seconds: int) -> None:
        raw = json.dumps(data, separators=(",", ":"))
        expires = self._clock() + _ttl(ttl_seconds)
        with self._lock:
            self._entries.pop(sid, None)
            if len(self._entries) >= self._max:
                self._make_room()
            self._entries[sid] = (expires, raw)

    async def touch(self, sid: str, ttl_seconds: int) -> bool:
        ttl, now = _ttl(ttl_seconds), self._clock()
        with self._lock:
            entry = self._entries.pop(sid, None)
            if entry is None or entry[0] <= now:
                return False
            self._entries[sid] = (now + ttl, entry[1])  # re-inserted: now the newest
            return True

    async def delete(self, sid: str) -> None:
        with self._lock:
            self._entries.pop(sid, None)

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        with self._lock:
            self._entries.clear()

    def _make_room(self) -> None:
        # Expired sessions go first; only if none has expired does a live one go (the one
        # idle longest). The scan runs only when full, so normal traffic stays O(1).
        now = self._clock()
        for sid in [sid for sid, (expires, _) in self._entries.items() if expires <= now]:
            del self._entries[sid]
        while len(self._entries) >= self._max:
            self._entries.popitem(last=False)


@contextmanager
def _unavailable(operation: str) -> Iterator[None]:
    try:
        yield
    except (TimeoutError, RedisError, OSError) as exc:
        # The cause may be shown to users, so it names no host; the chained error is for the log.
        cause = f"the session store did not answer ({operation}: {type(exc).__name__})"
        raise StoreUnavailable(cause) from exc


class RedisStore:
    """Sessions in Redis as JSON under ``prefix + sid``, expiring via ``SET ... EX`` and
    ``EXPIRE``; several gateway instances sharing one Redis see the same sessions."""

    def __init__(self, client: Redis, prefix: str = "frontrouter:session:") -> None:
        self.client = client
        self.prefix = prefix

    async def get(self, sid: str) -> dict[str, Any] | None:
        with _unavailable("get"):
            raw = await self.client.get(self.prefix + sid)
        if raw is None:
            return None
        try:
            data = json.loads(raw)
        except ValueError:
            return None  # not written by us (a foreign or damaged key): no session, not an outage
        return data if isinstance(data, dict) else None

    async def set(self, sid: str, data: dict[str, Any], ttl_seconds: int) -> None:
        raw = json.dumps(data, separators=(",", ":"))
        with _unavailable("set"):
            await self.client.set(self.prefix + sid, raw, ex=_ttl(ttl_seconds))

    async def touch(self, sid: str, ttl_seconds: int) -> bool:
        with _unavailable("touch"):
            return bool(await self.client.expire(self.prefix + sid, _ttl(ttl_seconds)))

    async def delete(self, sid: str) -> None:
        with _unavailable("delete"):
            await self.client.delete(self.prefix + sid)

    async def ping(self) -> bool:
        try:
            async with asyncio.timeout(PING_TIMEOUT_S):
                return bool(await self.client.ping())
        except (TimeoutError, RedisError, OSError):
            return False

    async def close(self) -> None:
        await self.client.aclose()


@dataclass(frozen=True)
class _Target:
    host: str
    port: int
    tls: bool
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_pem: str | None = None


def redis_store_from_env(environ: Mapping[str, str]) -> RedisStore | None:
    """A RedisStore from ``SESSION_STORE_URL`` (wins when set) or the one bound "redis-cache"
    service of ``VCAP_SERVICES``; None means sessions in memory. Raises ConfigError."""
    problems: list[str] = []
    url = environ.get("SESSION_STORE_URL", "").strip()
    target = _from_url(url, "SESSION_STORE_URL", problems) if url else _from_binding(environ, problems)
    if problems:
        raise ConfigError(problems)
    if target is None:
        return None
    # TLS always verifies the chain and the host name; there is deliberately no switch to turn
    # it off (a URL's query options, which redis-py would honour, are refused above).
    return RedisStore(Redis(
        host=target.host, port=target.port, db=target.db, username=target.username,
        password=target.password, ssl=target.tls, ssl_cert_reqs="required", ssl_check_hostname=True,
        ssl_ca_data=target.ca_pem, socket_connect_timeout=CONNECT_TIMEOUT_S,
        socket_timeout=COMMAND_TIMEOUT_S,
        retry=Retry(ExponentialWithJitterBackoff(cap=0.25, base=0.05), REDIS_RETRIES)))


def _from_url(url: str, origin: str, problems: list[str], ca_pem: str | None = None) -> _Target | None:
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        problems.append(f"{origin}: the scheme must be redis:// or rediss:// (TLS)")
        return None
    if parts.query or parts.fragment:
        problems.append(f"{origin}: options after '?' are not accepted (certificate checks stay on)")
    db = parts.path.strip("/") or "0"
    try:
        port = 6379 if parts.port is None else parts.port
    except ValueError:  # not a number, or above 65535
        port = 0
    if port == 0:
        problems.append(f"{origin}: the port is not a number from 1 to 65535")
    if not parts.hostname:
        problems.append(f"{origin}: no host name")
    if not db.isdigit():
        problems.append(f"{origin}: the path must be a database number, like /0")
        db = "0"
    return _Target(host=parts.hostname or "", port=port, tls=parts.scheme == "rediss", db=int(db),
                   username=unquote(parts.username) if parts.username else None,
                   password=unquote(parts.password) if parts.password else None, ca_pem=ca_pem)


def _from_binding(environ: Mapping[str, str], problems: list[str]) -> _Target | None:
    try:
        groups = json.loads(environ.get("VCAP_SERVICES") or "{}").values()
        found = [svc for group in groups for svc in group if svc.get("label") == REDIS_LABEL]
    except (ValueError, AttributeError, TypeError):
        problems.append("VCAP_SERVICES is not valid JSON of the form {label: [service, ...]}")
        return None
    if len(found) != 1:
        if found:
            names = ", ".join(repr(svc.get("name")) for svc in found)
            problems.append(f"{len(found)} '{REDIS_LABEL}' services are bound ({names}); bind one "
                            "or name the sessions' Redis in SESSION_STORE_URL")
        return None
    name, creds = found[0].get("name"), found[0].get("credentials") or {}
    origin = f"service {name!r}"
    if not isinstance(creds, dict):
        problems.append(f"{origin}: 'credentials' is not an object")
        return None
    if creds.get("cluster_mode"):
        problems.append(f"{origin}: cluster mode is not supported; create the instance without it")
    ca_pem = None
    if creds.get("ca_base64"):
        try:
            ca_pem = base64.b64decode(creds["ca_base64"], validate=True).decode("ascii")
        except (binascii.Error, UnicodeDecodeError, TypeError):
            problems.append(f"{origin}: 'ca_base64' is not base64 of a PEM certificate")
    # The discrete fields are preferred over 'uri': they say in so many words whether TLS is on.
    if not creds.get("hostname"):
        if isinstance(creds.get("uri"), str):
            return _from_url(creds["uri"], f"{origin} uri", problems, ca_pem)
        problems.append(f"{origin}: credentials have neither 'hostname' nor 'uri'")
        return None
    port, tls = creds.get("port", 6379), creds.get("tls", False)
    if not isinstance(tls, bool):
        problems.append(f"{origin}: 'tls' must be true or false")
    try:
        port = int(port)
        if not 0 < port < 65536:
            raise ValueError(port)
    except (TypeError, ValueError):
        problems.append(f"{origin}: 'port' is not a number from 1 to 65535")
        port = 0
    return _Target(host=str(creds["hostname"]), port=port, tls=tls is True,
                   password=creds.get("password") or None, ca_pem=ca_pem)


def new_session_id() -> str:
    """A fresh session id: 256 bits from the CSPRNG, base64url (43 characters)."""
    return secrets.token_urlsafe(32)


def _mac(sid: str, secret: bytes) -> str:
    if len(secret) < MIN_SECRET_CHARS:
        raise ValueError("the session secret is too short; use session_secret_from_env()")
    digest = hmac.new(secret, _SIGN_CONTEXT + sid.encode("ascii"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def sign_session_id(sid: str, secret: bytes) -> str:
    """The cookie value for ``sid``: ``<sid>.<base64url HMAC-SHA256>``."""
    if not _SID.fullmatch(sid):
        raise ValueError("not a session id made by new_session_id()")
    return f"{sid}.{_mac(sid, secret)}"


def unsign_session_id(value: str | None, secret: bytes) -> str | None:
    """The session id of a cookie value, or None when it is malformed or not signed with
    ``secret``. Only the one canonical encoding of the MAC is accepted."""
    if not isinstance(value, str) or not value.isascii():
        return None
    sid, dot, mac = value.partition(".")
    if not dot or not _SID.fullmatch(sid) or not _SID.fullmatch(mac):
        return None
    return sid if hmac.compare_digest(mac.encode("ascii"), _mac(sid, secret).encode("ascii")) else None


def session_secret_from_env(environ: Mapping[str, str], *, shared: bool) -> bytes:
    """The key that signs session cookies: ``SESSION_SECRET`` (at least 32 characters).

    Required when ``shared`` (a Redis store: every instance must accept the others' cookies).
    Otherwise an unset secret means a random one per process: memory sessions die with the
    process anyway. A set but short secret is an error either way.
    """
    value = environ.get("SESSION_SECRET", "")
    if len(value) >= MIN_SECRET_CHARS:
        return value.encode("utf-8")
    if value:
        raise ConfigError([f"SESSION_SECRET has {len(value)} characters; it needs {MIN_SECRET_CHARS} or "
                           "more (python3 -c 'import secrets; print(secrets.token_urlsafe(48))' prints one)"])
    if shared:
        raise ConfigError(["SESSION_SECRET is not set: with a shared session store (Redis) every "
                           "instance must sign cookies with the same secret of at least "
                           f"{MIN_SECRET_CHARS} characters"])
    return secrets.token_bytes(32)


@dataclass
class _Holder:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class RefreshLocks:
    """One token refresh at a time per session, within this process.

    Parallel requests of one session whose token is about to expire queue up behind the first
    one's refresh instead of each spending the refresh token (approuter.md §4 pain point 6).
    Inside the block the caller re-reads the session from the store and refreshes only if the
    token is still stale: the requests that waited then find the new token. Entries live only
    while someone holds or waits, so nothing leaks.

    Across instances sharing Redis, two refreshes of one session can still race. That is
    tolerated rather than locked in Redis: both obtain valid tokens and the last ``set`` wins.
    If the IdP rotates refresh tokens and the loser gets ``invalid_grant``, the caller re-reads
    the session (the winner's tokens are there) before it sends the user to log in.
    """

    def __init__(self) -> None:
        self._holders: dict[str, _Holder] = {}

    def __len__(self) -> int:
        return len(self._holders)

    @asynccontextmanager
    async def hold(self, sid: str) -> AsyncIterator[None]:
        """Hold the refresh lock of ``sid`` for the ``async with`` block."""
        holder = self._holders.setdefault(sid, _Holder())
        holder.users += 1
        try:
            async with holder.lock:
                yield
        finally:  # also when cancelled while waiting
            holder.users -= 1
            if holder.users == 0:
                del self._holders[sid]
