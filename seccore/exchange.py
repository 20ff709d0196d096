"""The jwt-bearer exchange (RFC 7523 §2.1) at the CPI binding's ``tokenurl``.

The user's validated token is the assertion; the CPI client authenticates with HTTP Basic
(secret) or a client certificate (x509, ``client_id`` in the form). Exchanged tokens are
cached per user token until ``REFRESH_MARGIN`` seconds before they expire, and concurrent
requests for the same user token share one call. Connect errors and 429/502/503/504 are
retried (bounded, with backoff, by the session); a 4xx never is. The token endpoint's own
error is kept and translated into a cause and a fix in BTP terms.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote

import requests
from cachetools import TLRUCache

from seccore.bindings import CpiBinding
from seccore.compact import unverified_parts
from seccore.errors import ExchangeError
from seccore.outbound import CircuitBreaker, Timeouts, retry_after_of
from seccore.validation import ValidatedToken

__all__ = ["JWT_BEARER", "REFRESH_MARGIN", "ExchangedToken", "JwtBearerExchange"]

log = logging.getLogger(__name__)

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
REFRESH_MARGIN = 300
#: Exchanged tokens kept (~7 KiB each): 2,000 is ~14 MiB per worker.
CACHE_SIZE = 2000
MAX_ERROR_TEXT = 300


@dataclass(frozen=True)
class ExchangedToken:
    """The token the token endpoint returned for the CPI client, with its decoded claims.

    The claims are read, not signature-checked: the token came straight from the token
    endpoint over verified TLS, and CPI is the party that validates it.
    """

    access_token: str = field(repr=False)
    header: Mapping[str, Any]
    claims: Mapping[str, Any]
    expires_at: float
    #: milliseconds the token endpoint took (0 when served from the cache)
    took_ms: float = 0.0
    from_cache: bool = False

    @property
    def scopes(self) -> list[str]:
        scope = self.claims.get("scope")
        return [s for s in scope if isinstance(s, str)] if isinstance(scope, list) else []


class JwtBearerExchange:
    """Exchanges user tokens for CPI tokens, with a per-user-token cache and single flight."""

    def __init__(self, cpi: CpiBinding, session: requests.Session, *,
                 timeouts: Timeouts = Timeouts(connect=3.0, read=10.0),
                 clock: Callable[[], float] = time.time, breaker: CircuitBreaker | None = None,
                 cache_size: int = CACHE_SIZE) -> None:
        self._cpi = cpi
        self._breaker = breaker or CircuitBreaker()
        self._session = session
        self._timeouts = timeouts
        self._clock = clock
        self._cache: TLRUCache[bytes, ExchangedToken] = TLRUCache(
            maxsize=cache_size, ttu=lambda _k, v, _now: v.expires_at - REFRESH_MARGIN, timer=clock)
        self._inflight: dict[bytes, Future[ExchangedToken]] = {}
        self._lock = threading.Lock()
        #: how many calls reached the token endpoint (for tests and metrics)
        self.calls = 0

    def exchange(self, user: ValidatedToken) -> ExchangedToken:
        """The CPI token for ``user``: from the cache, from a call in flight, or a new call."""
        key = hashlib.sha256(user.raw.encode()).digest()
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                return replace(cached, took_ms=0.0, from_cache=True)
            future = self._inflight.get(key)
            leader = future is None
            if future is None:
                future = self._inflight[key] = Future()
        if not leader:
            return future.result()
        try:
            token = self._call(user)
        except BaseException as exc:
            future.set_exception(exc)
            raise
        finally:
            with self._lock:
                self._inflight.pop(key, None)
        with self._lock:
            self._cache[key] = token
        future.set_result(token)
        return token

    def forget(self, user: ValidatedToken) -> None:
        """Drop the cached CPI token of ``user`` (after CPI refused it)."""
        with self._lock:
            self._cache.pop(hashlib.sha256(user.raw.encode()).digest(), None)

    def _call(self, user: ValidatedToken) -> ExchangedToken:
        creds = self._cpi.credentials
        form = {"grant_type": JWT_BEARER, "assertion": user.raw, "client_id": creds.client_id}
        headers = {"Accept": "application/json"}
        zone = user.claims.get("app_tid") if user.kind == "ias" else None
        if isinstance(zone, str) and zone.isprintable() and len(zone) <= 64:
            headers["X-zid"] = zone  # as SAP's libraries do for IAS assertions
        auth = None
        if not creds.is_x509:
            # RFC 6749 §2.3.1: form-encode both parts; XSUAA decodes them when told so.
            auth = (quote(creds.client_id, safe=""), quote(creds.client_secret or "", safe=""))
            headers["X-CF-ENCODED-CREDENTIALS"] = "true"
        wait = self._breaker.seconds_open()
        if wait:
            raise ExchangeError("the token endpoint failed several times in a row; it is not called for "
                                "a moment", "retry in a moment", status=503, retry_after=wait)
        started = time.perf_counter()
        self.calls += 1
        try:
            response = self._post(form, headers, auth)
        except requests.exceptions.SSLError as exc:
            # F-23 / ASVS5 16.3.4: the answer says "not trusted"; the log keeps the handshake's reason
            log.warning("TLS failure at the token endpoint, certificate not trusted: %s", exc)
            raise ExchangeError(
                "the TLS certificate of the token endpoint is not trusted",
                "check the tokenurl of the CPI binding; extra CAs go in REQUESTS_CA_BUNDLE",
                status=502) from exc
        except requests.exceptions.Timeout as exc:
            raise ExchangeError("the token endpoint did not answer in time",
                                "retry later; if it persists, check the XSUAA status", status=504) from exc
        except requests.RequestException as exc:
            raise ExchangeError(f"the token endpoint could not be reached ({type(exc).__name__})",
                                "retry later; check the tokenurl of the CPI binding", status=503) from exc
        took_ms = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise _diagnose(response, user)
        return self._read_token(response, took_ms)

    def _post(self, form: dict[str, str], headers: dict[str, str],
              auth: tuple[str, str] | None) -> requests.Response:
        """One exchange call; transient failures are counted by the breaker."""
        try:
            response = self._session.post(self._cpi.tokenurl, data=form, headers=headers, auth=auth,
                                          timeout=self._timeouts.as_tuple(), allow_redirects=False)
        except requests.RequestException:
            self._breaker.record(failed=True)
            raise
        self._breaker.record(failed=response.status_code >= 500 or response.status_code == 429)
        return response

    def _read_token(self, response: requests.Response, took_ms: float) -> ExchangedToken:
        malformed = ExchangeError("the token endpoint answered 200 without a usable bearer token",
                                  "check that tokenurl is the XSUAA token endpoint of the CPI key")
        try:
            body = response.json()
        except ValueError:
            raise malformed from None
        if not isinstance(body, dict):
            raise malformed
        access_token, token_type = body.get("access_token"), body.get("token_type", "bearer")
        if not isinstance(access_token, str) or str(token_type).lower() != "bearer":
            raise malformed
        try:
            header, claims = unverified_parts(access_token)
        except ValueError:
            raise malformed from None
        exp = claims.get("exp")
        if not isinstance(exp, (int, float)) or isinstance(exp, bool) or exp <= self._clock():
            raise ExchangeError("the token endpoint returned a token that is already expired or "
                                "has no expiry", "check the clock and token validity of XSUAA")
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if claims.get("cid") != self._cpi.client_id and self._cpi.client_id not in audiences:
            raise ExchangeError("the token endpoint returned a token for another client than CPI's",
                                "check that tokenurl is the XSUAA token endpoint of the CPI key")
        log.info("jwt-bearer exchange done", extra={"took_ms": round(took_ms, 1)})
        return ExchangedToken(access_token=access_token, header=header, claims=claims,
                              expires_at=float(exp), took_ms=took_ms)


def _server_error(response: requests.Response) -> tuple[str, str]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        error, description = body.get("error", ""), body.get("error_description", "")
        return str(error)[:64], str(description)[:MAX_ERROR_TEXT]
    return "", response.text[:MAX_ERROR_TEXT]


def _diagnose(response: requests.Response, user: ValidatedToken) -> ExchangeError:
    """Translate the token endpoint's refusal into a cause and a fix (btp-security.md §3.6)."""
    status = response.status_code
    error, description = _server_error(response)
    text = description.lower()
    kw = {"server_error": error, "server_description": description}
    if "unauthorized grant type" in text:
        return ExchangeError(
            "CPI does not allow the jwt-bearer grant: its XSUAA client refused "
            "grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer",
            "add \"urn:ietf:params:oauth:grant-type:jwt-bearer\" to \"grant-types\" in "
            "config-cpi.json, update the it-rt instance and recreate the binding", status=502, **kw)
    if "not in the token audience" in text:
        return ExchangeError(
            "the IAS token's audience lacks the subaccount XSUAA client, so XSUAA refuses it "
            "as an assertion",
            "create the identity instance with \"xsuaa-cross-consumption\": true "
            "(config-ias.json), rebind, and log in again", status=502, **kw)
    if "unable to map issuer" in text:
        where = ("the IAS tenant that issued it is not a trusted identity provider of this "
                 "subaccount" if user.kind == "ias" else
                 "it comes from another subaccount than the CPI binding")
        return ExchangeError(
            f"XSUAA cannot map the token's issuer to an identity provider: {where}",
            "establish trust to the IAS tenant in the subaccount (Security > Trust Configuration), "
            "and bind CPI from the same subaccount as the user's login", status=502, **kw)
    if error == "invalid_scope" or status == 400 and "scope" in text:
        return ExchangeError(
            "the user has none of the CPI client's scopes, so XSUAA issues no token",
            "add the CPI role (config-cpi.json \"roles\") to a role collection and assign it to "
            "the user or map it to the user's IdP group", status=403, **kw)
    if error == "invalid_grant":
        return ExchangeError("the token endpoint refused the user's token as an assertion (invalid_grant)",
                             "log in again; if it persists, see the server's answer below", status=401, **kw)
    if "exp" in text and error == "invalid_token":
        return ExchangeError("XSUAA considers the user's token expired",
                             "log in again", status=401, **kw)
    if status == 401 and (error in ("invalid_client", "unauthorized") or "credentials" in text):
        return ExchangeError(
            "XSUAA refused the CPI client's credentials",
            "recreate the CPI service key or binding (the secret or certificate may be "
            "outdated) and restage the app", status=502, **kw)
    if status == 429 or status >= 500:
        return ExchangeError(f"the token endpoint is unavailable (HTTP {status})",
                             "retry later", status=503, retry_after=retry_after_of(response), **kw)
    if 300 <= status < 400:
        return ExchangeError(f"the token endpoint redirected (HTTP {status})",
                             "tokenurl must be the full .../oauth/token URL of the CPI key",
                             status=502, **kw)
    return ExchangeError(f"the token endpoint refused the exchange (HTTP {status})",
                         "see the server's answer below", status=502, **kw)
