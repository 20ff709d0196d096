"""Session stores, the signed session cookie, the session secret and the refresh locks.

The Redis tests run against real ``redis-server`` processes (tests/gateway/conftest.py).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio

from gateway.sessions import (
    COOKIE_ATTRIBUTES,
    COOKIE_NAME,
    MemoryStore,
    RedisStore,
    RefreshLocks,
    SessionStore,
    StoreUnavailable,
    new_session_id,
    redis_store_from_env,
    session_secret_from_env,
    sign_session_id,
    unsign_session_id,
)
from seccore.errors import ConfigError
from tests.factories import FakeClock
from tests.gateway.conftest import RedisServer, start_redis_server
from tests.integration.servers import Pki

SESSION = {"access_token": "eyJ.a.b", "expires_at": 1_700_000_000, "user": {"name": "Jane Doe"},
           "return_to": "/app/?q=1", "csrf_secret": "s3cret"}
SECRET = b"k" * 32
EXPIRY_DEADLINE_S = 5.0


def vcap(*services: dict[str, Any]) -> str:
    return json.dumps({"redis-cache": list(services)})


def redis_binding(name: str = "sessions", **credentials: Any) -> dict[str, Any]:
    return {"label": "redis-cache", "name": name, "plan": "standard", "credentials": credentials}


# --- MemoryStore -------------------------------------------------------------------------------


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1000.0)


@pytest.fixture
def memory(clock: FakeClock) -> MemoryStore:
    return MemoryStore(clock=clock)


@pytest.mark.asyncio
async def test_memory_store_keeps_a_copy_until_deleted(memory: MemoryStore) -> None:
    assert isinstance(memory, SessionStore)
    data = dict(SESSION)
    await memory.set("a", data, 60)
    data["user"] = "changed after set"
    got = await memory.get("a")
    assert got == SESSION and got is not None
    got["access_token"] = "changed after get"
    assert await memory.get("a") == SESSION
    await memory.delete("a")
    await memory.delete("a")  # unknown: no error
    assert await memory.get("a") is None and len(memory) == 0


@pytest.mark.asyncio
async def test_memory_store_expires_after_idle_time_and_get_does_not_extend(
        memory: MemoryStore, clock: FakeClock) -> None:
    await memory.set("a", SESSION, 10)
    clock.advance(9.9)
    assert await memory.get("a") == SESSION
    clock.advance(0.1)
    assert await memory.get("a") is None
    assert len(memory) == 0  # the expired entry went with the read


@pytest.mark.asyncio
async def test_memory_store_touch_restarts_the_idle_timer(memory: MemoryStore, clock: FakeClock) -> None:
    await memory.set("a", SESSION, 10)
    clock.advance(6)
    assert await memory.touch("a", 10) is True
    clock.advance(6)
    assert await memory.get("a") == SESSION
    clock.advance(4)
    assert await memory.touch("a", 10) is False  # already expired: touching does not revive it
    assert await memory.get("a") is None
    assert await memory.touch("never-set", 10) is False


@pytest.mark.asyncio
async def test_memory_store_bound_evicts_the_expired_first(clock: FakeClock) -> None:
    store = MemoryStore(clock=clock, max_sessions=3)
    await store.set("a", {"n": 1}, 100)
    await store.set("b", {"n": 2}, 1)
    await store.set("c", {"n": 3}, 100)
    clock.advance(2)  # b has expired
    await store.set("d", {"n": 4}, 100)
    assert [await store.get(sid) for sid in "abcd"] == [{"n": 1}, None, {"n": 3}, {"n": 4}]
    assert len(store) == 3


@pytest.mark.asyncio
async def test_memory_store_bound_then_evicts_the_least_recently_active(clock: FakeClock) -> None:
    store = MemoryStore(clock=clock, max_sessions=3)
    for sid in "abc":
        await store.set(sid, {"sid": sid}, 100)
    await store.touch("a", 100)  # a is active again: b is now the idlest
    await store.set("d", {"sid": "d"}, 100)
    assert await store.get("b") is None
    await store.set("c", {"sid": "c2"}, 100)  # replacing an entry evicts nothing
    assert {sid for sid in "abcd" if await store.get(sid)} == {"a", "c", "d"}
    assert len(store) == 3


@pytest.mark.asyncio
@pytest.mark.parametrize("ttl", [0, -1, 1.5, True], ids=["zero", "negative", "float", "bool"])
async def test_memory_store_refuses_a_bad_ttl(memory: MemoryStore, ttl: Any) -> None:
    with pytest.raises(ValueError, match="ttl_seconds"):
        await memory.set("a", SESSION, ttl)


@pytest.mark.asyncio
async def test_memory_store_refuses_what_redis_could_not_hold(memory: MemoryStore) -> None:
    with pytest.raises(TypeError):
        await memory.set("a", {"when": object()}, 60)


@pytest.mark.asyncio
async def test_memory_store_ping_and_close(memory: MemoryStore) -> None:
    await memory.set("a", SESSION, 60)
    assert await memory.ping() is True
    await memory.close()
    assert await memory.get("a") is None


# --- RedisStore against a real redis-server --------------------------------------------------


@pytest.fixture
def store(redis_client: redis.asyncio.Redis, key_prefix: str) -> RedisStore:
    return RedisStore(redis_client, prefix=key_prefix)


@pytest.mark.integration
@pytest.mark.asyncio
async def test_redis_store_writes_json_with_an_expiry(
        store: RedisStore, redis_client: redis.asyncio.Redis, key_prefix: str) -> None:
    assert isinstance(store, SessionStore) and await store.ping() is True
    await store.set("a", SESSION, 600)
    assert json.loads(await redis_client.get(key_prefix + "a")) == SESSION
    assert 0 < await redis_client.ttl(key_prefix + "a") <= 600
    assert await store.get("a") == SESSION
    assert await redis_client.ttl(key_prefix + "a") <= 600  # get does not extend
    assert await store.touch("a", 3600) is True
    assert await redis_client.ttl(key_prefix + "a") > 600
    assert await store.touch("unknown", 60) is False
    await store.delete("a")
    assert await store.get("a") is None and await redis_client.exists(key_prefix + "a") == 0


@pytest.mark.integration
@pytest.mark.asyncio
async def test_two_instances_share_sessions(redis_server: RedisServer, store: RedisStore,
                                            key_prefix: str) -> None:
    other = RedisStore(redis_server.client(), prefix=key_prefix)  # another instance, own connections
    stranger = RedisStore(redis_server.client(), prefix=key_prefix + "other:")
    try:
        await store.set("a", SESSION, 60)
        assert await other.get("a") == SESSION
        assert await stranger.get("a") is None  # another prefix, another application
        await other.set("a", {**SESSION, "access_token": "refreshed"}, 60)
        assert (await store.get("a") or {})["access_token"] == "refreshed"
        await other.delete("a")
        assert await store.get("a") is None
    finally:
        await other.close()
        await stranger.close()


@pytest.mark.integration
@pytest.mark.asyncio
async def test_redis_store_session_expires(store: RedisStore) -> None:
    await store.set("a", SESSION, 1)
    assert await store.get("a") == SESSION
    deadline = time.monotonic() + EXPIRY_DEADLINE_S
    while await store.get("a") is not None:
        assert time.monotonic() < deadline, "a session with a 1 s TTL outlived the deadline"
        await asyncio.sleep(0.05)


@pytest.mark.integration
@pytest.mark.asyncio
@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b"\xff\xfe"], ids=["text", "list", "binary"])
async def test_a_foreign_value_is_no_session(store: RedisStore, redis_client: redis.asyncio.Redis,
                                             key_prefix: str, raw: bytes) -> None:
    await redis_client.set(key_prefix + "a", raw, ex=60)
    assert await store.get("a") is None


@pytest.mark.integration
@pytest.mark.asyncio
async def test_a_stopped_store_fails_closed(throwaway_redis: RedisServer) -> None:
    """F-26: a store outage is an error (503), never "no session"."""
    store = redis_store_from_env({"SESSION_STORE_URL": throwaway_redis.url})
    assert store is not None
    try:
        await store.set("a", SESSION, 60)
        throwaway_redis.stop()
        started = time.monotonic()
        for call in (lambda: store.get("a"), lambda: store.set("a", SESSION, 60),
                     lambda: store.touch("a", 60), lambda: store.delete("a")):
            with pytest.raises(StoreUnavailable) as caught:
                await call()
            assert caught.value.status == 503 and caught.value.code == "session_store_unavailable"
        assert await store.ping() is False
        assert time.monotonic() - started < 5, "retries must be few and short"
    finally:
        await store.close()


@pytest.mark.integration
@pytest.mark.asyncio
async def test_a_bound_store_with_password(tmp_path: Path) -> None:
    server = start_redis_server(tmp_path, password="p@ss:w/rd")
    good = redis_store_from_env({"VCAP_SERVICES": vcap(redis_binding(
        hostname="127.0.0.1", port=server.port, password="p@ss:w/rd", tls=False))})
    bad = redis_store_from_env({"VCAP_SERVICES": vcap(redis_binding(
        hostname="127.0.0.1", port=str(server.port), password="wrong", tls=False))})
    by_uri = redis_store_from_env({"VCAP_SERVICES": vcap(redis_binding(uri=server.url))})
    assert good and bad and by_uri
    try:
        await good.set("a", SESSION, 60)
        assert await by_uri.get("a") == SESSION
        assert await bad.ping() is False
        with pytest.raises(StoreUnavailable):
            await bad.get("a")
    finally:
        for each in (good, bad, by_uri):
            await each.close()
        server.stop()


@pytest.mark.integration
@pytest.mark.asyncio
async def test_tls_verifies_the_server_certificate(tmp_path: Path, redis_pki: Pki) -> None:
    server = start_redis_server(tmp_path, pki=redis_pki)
    ca_base64 = base64.b64encode(redis_pki.ca_file.read_bytes()).decode()
    unknown_ca = redis_store_from_env({"SESSION_STORE_URL": server.url})
    trusted = redis_store_from_env({"VCAP_SERVICES": vcap(redis_binding(
        hostname="127.0.0.1", port=server.port, tls=True, ca_base64=ca_base64))})
    plain = redis_store_from_env({"VCAP_SERVICES": vcap(redis_binding(
        hostname="127.0.0.1", port=server.port, tls=False))})
    assert unknown_ca and trusted and plain
    try:
        await trusted.set("a", SESSION, 60)
        assert await trusted.get("a") == SESSION
        with pytest.raises(StoreUnavailable):  # the test CA is not in the system's trust store
            await unknown_ca.get("a")
        with pytest.raises(StoreUnavailable):
            await plain.get("a")
    finally:
        for each in (unknown_ca, trusted, plain):
            await each.close()
        server.stop()


# --- redis_store_from_env: configuration ------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize(("environ", "expected"), [
    pytest.param({"SESSION_STORE_URL": "redis://cache.internal"},
                 {"host": "cache.internal", "port": 6379, "db": 0, "password": None}, id="url-defaults"),
    pytest.param({"SESSION_STORE_URL": "rediss://user:p%40ss@cache.internal:6380/2"},
                 {"host": "cache.internal", "port": 6380, "db": 2, "username": "user", "password": "p@ss",
                  "ssl_cert_reqs": "required", "ssl_check_hostname": True}, id="url-tls"),
    pytest.param({"VCAP_SERVICES": vcap(redis_binding(hostname="h.aws", port=1234, password="pw", tls=True))},
                 {"host": "h.aws", "port": 1234, "password": "pw", "ssl_cert_reqs": "required",
                  "ssl_check_hostname": True}, id="binding-fields"),
    pytest.param({"VCAP_SERVICES": vcap(redis_binding(uri="rediss://:pw@h.aws:1234"))},
                 {"host": "h.aws", "port": 1234, "password": "pw", "ssl_check_hostname": True},
                 id="binding-uri"),
    pytest.param({"VCAP_SERVICES": vcap(redis_binding(hostname="h.aws", port=1234)),
                  "SESSION_STORE_URL": "redis://explicit:7000"}, {"host": "explicit", "port": 7000},
                 id="url-wins-over-binding"),
])
async def test_store_configuration(environ: dict[str, str], expected: dict[str, Any]) -> None:
    store = redis_store_from_env(environ)
    assert store is not None
    try:
        kwargs = store.client.connection_pool.connection_kwargs
        assert {key: kwargs.get(key) for key in expected} == expected
        assert kwargs["socket_timeout"] <= 2 and kwargs["socket_connect_timeout"] <= 2
    finally:
        await store.close()


@pytest.mark.parametrize("environ", [
    pytest.param({}, id="nothing"),
    pytest.param({"VCAP_SERVICES": json.dumps({"xsuaa": [{"label": "xsuaa", "credentials": {}}]})},
                 id="no-redis-bound"),
    pytest.param({"SESSION_STORE_URL": "  "}, id="blank-url"),
])
def test_no_redis_means_memory(environ: dict[str, str]) -> None:
    assert redis_store_from_env(environ) is None


@pytest.mark.parametrize(("environ", "problem"), [
    pytest.param({"SESSION_STORE_URL": "http://cache:6379"}, "scheme", id="scheme"),
    pytest.param({"SESSION_STORE_URL": "unix:///run/redis.sock"}, "scheme", id="unix-socket"),
    pytest.param({"SESSION_STORE_URL": "rediss://cache:6380/0?ssl_cert_reqs=none"}, "options",
                 id="tls-check-off"),
    pytest.param({"SESSION_STORE_URL": "redis://:pw@/0"}, "host", id="no-host"),
    pytest.param({"SESSION_STORE_URL": "redis://cache:99999"}, "port", id="port-range"),
    pytest.param({"SESSION_STORE_URL": "redis://cache/sessions"}, "database number", id="db-name"),
    pytest.param({"VCAP_SERVICES": "{not json"}, "VCAP_SERVICES", id="vcap-json"),
    pytest.param({"VCAP_SERVICES": vcap(redis_binding("a", hostname="h"), redis_binding("b", hostname="h"))},
                 "2 'redis-cache' services", id="two-bound"),
    pytest.param({"VCAP_SERVICES": vcap(redis_binding(hostname="h", cluster_mode=True))}, "cluster",
                 id="cluster-mode"),
    pytest.param({"VCAP_SERVICES": vcap(redis_binding(password="pw"))}, "neither 'hostname' nor 'uri'",
                 id="no-host-no-uri"),
    pytest.param({"VCAP_SERVICES": vcap(redis_binding(hostname="h", tls="false"))}, "'tls'",
                 id="tls-not-bool"),
    pytest.param({"VCAP_SERVICES": vcap(redis_binding(hostname="h", port="x"))}, "'port'", id="port-text"),
    pytest.param({"VCAP_SERVICES": vcap(redis_binding(hostname="h", ca_base64="%%%"))}, "ca_base64",
                 id="ca-not-base64"),
    pytest.param({"VCAP_SERVICES": vcap(redis_binding(uri="rediss://h:1?ssl_check_hostname=false"))},
                 "options", id="binding-uri-options"),
])
def test_store_configuration_problems(environ: dict[str, str], problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        redis_store_from_env(environ)
    assert any(problem in each for each in caught.value.problems), caught.value.problems


# --- session ids and the signed cookie --------------------------------------------------------


def test_session_ids_are_256_bit_and_unique() -> None:
    ids = {new_session_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(len(base64.urlsafe_b64decode(sid + "=")) == 32 for sid in ids)


def test_cookie_defaults() -> None:
    assert COOKIE_NAME == "frontrouter_session"
    assert dict(COOKIE_ATTRIBUTES) == {"secure": True, "httponly": True, "samesite": "Lax", "path": "/"}


def test_a_signed_id_round_trips() -> None:
    sid = new_session_id()
    value = sign_session_id(sid, SECRET)
    assert value.startswith(sid + ".") and len(value) < 100
    assert unsign_session_id(value, SECRET) == sid


SID = new_session_id()
SIGNED = sign_session_id(SID, SECRET)


def _flip(text: str, index: int) -> str:
    return text[:index] + ("A" if text[index] != "A" else "B") + text[index + 1:]


@pytest.mark.parametrize("value", [
    pytest.param(_flip(SIGNED, len(SIGNED) - 5), id="tampered-mac"),
    pytest.param(_flip(SIGNED, 3), id="tampered-id"),
    pytest.param(SIGNED[:-1], id="truncated"),
    pytest.param(SIGNED + "A", id="extended"),
    pytest.param(SID, id="unsigned"),
    pytest.param(SIGNED.split(".")[0] + ".", id="empty-mac"),
    pytest.param("." + SIGNED.split(".")[1], id="empty-id"),
    pytest.param(sign_session_id(SID, b"o" * 32), id="other-secret"),
    pytest.param(SIGNED + "." + SIGNED.split(".")[1], id="two-dots"),
    pytest.param(SIGNED[:-1] + "+", id="not-base64url"),
    pytest.param("", id="empty"),
    pytest.param(None, id="none"),
    pytest.param(SIGNED[:-1] + "é", id="non-ascii"),
    pytest.param("s%3A" + SIGNED, id="express-prefix"),
])
def test_a_bad_cookie_is_no_session(value: str | None) -> None:
    assert unsign_session_id(value, SECRET) is None


def test_only_the_canonical_mac_encoding_is_accepted() -> None:
    # The MAC's last base64 character carries 2 spare bits; another character with the same
    # 4 significant bits decodes to the same bytes and must still be refused.
    last = SIGNED[-1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    twin = alphabet[alphabet.index(last) ^ 1]
    assert unsign_session_id(SIGNED[:-1] + twin, SECRET) is None


@pytest.mark.parametrize("sid", ["", "short", "x" * 43 + ".", "é" * 43])
def test_only_real_session_ids_are_signed(sid: str) -> None:
    with pytest.raises(ValueError, match="session id"):
        sign_session_id(sid, SECRET)


def test_a_short_secret_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="too short"):
        sign_session_id(SID, b"short")


# --- the session secret -------------------------------------------------------------------------


@pytest.mark.parametrize("shared", [True, False])
def test_the_configured_secret_is_used(shared: bool) -> None:
    assert session_secret_from_env({"SESSION_SECRET": "x" * 32}, shared=shared) == b"x" * 32


def test_memory_sessions_get_a_random_secret_per_process() -> None:
    first, second = (session_secret_from_env({}, shared=False) for _ in range(2))
    assert len(first) == 32 and first != second


@pytest.mark.parametrize(("environ", "shared", "problem"), [
    pytest.param({}, True, "not set", id="shared-missing"),
    pytest.param({"SESSION_SECRET": ""}, True, "not set", id="shared-empty"),
    pytest.param({"SESSION_SECRET": "x" * 31}, True, "31 characters", id="shared-short"),
    pytest.param({"SESSION_SECRET": "x" * 31}, False, "31 characters", id="memory-short"),
])
def test_secret_problems(environ: dict[str, str], shared: bool, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        session_secret_from_env(environ, shared=shared)
    assert problem in caught.value.problems[0]
    assert "x" * 31 not in str(caught.value)  # the secret itself is never echoed


# --- RefreshLocks -------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_refreshes_of_one_session_take_turns() -> None:
    locks = RefreshLocks()
    events: list[str] = []
    first_inside = asyncio.Event()
    release_first = asyncio.Event()

    async def first() -> None:
        async with locks.hold("s1"):
            events.append("first in")
            first_inside.set()
            await release_first.wait()
            events.append("first out")

    async def second() -> None:
        await first_inside.wait()
        async with locks.hold("s1"):
            events.append("second in")

    tasks = [asyncio.create_task(first()), asyncio.create_task(second())]
    await first_inside.wait()
    for _ in range(5):
        await asyncio.sleep(0)  # give the second task every chance to get in early
    assert events == ["first in"] and len(locks) == 1
    release_first.set()
    await asyncio.gather(*tasks)
    assert events == ["first in", "first out", "second in"]
    assert len(locks) == 0


@pytest.mark.asyncio
async def test_refreshes_of_different_sessions_do_not_wait() -> None:
    locks = RefreshLocks()
    async with locks.hold("s1"):
        async with asyncio.timeout(1):
            async with locks.hold("s2"):
                assert len(locks) == 2
    assert len(locks) == 0


@pytest.mark.asyncio
async def test_no_entry_leaks_after_errors_or_cancellation() -> None:
    locks = RefreshLocks()
    with pytest.raises(RuntimeError):
        async with locks.hold("s1"):
            raise RuntimeError("refresh failed")
    assert len(locks) == 0

    async def wait_for(sid: str) -> None:
        async with locks.hold(sid):
            pass

    async with locks.hold("s1"):
        waiter = asyncio.create_task(wait_for("s1"))
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert len(locks) == 1  # only the holder remains
    assert len(locks) == 0
