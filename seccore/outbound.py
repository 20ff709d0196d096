"""Outbound HTTPS: one ``requests`` session per purpose, with timeouts, bounded retries and
certificate verification that cannot be switched off.

Extra trusted CAs come only from the standard variables: ``REQUESTS_CA_BUNDLE`` /
``CURL_CA_BUNDLE`` (read by requests itself) or ``SSL_CERT_FILE``. That is how the local
emulator and the tests are trusted; there is no "insecure" switch.
"""

from __future__ import annotations

import math
import os
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import InvalidHeader, MaxRetryError, ResponseError
from urllib3.util.retry import Retry

__all__ = ["BearerAuth", "CircuitBreaker", "Timeouts", "client_cert_files", "make_session", "read_capped",
           "retry_after_of"]

#: Statuses worth another try: rate limited, or a gateway in front of the server failed.
TRANSIENT_STATUSES = frozenset({429, 502, 503, 504})


@dataclass(frozen=True)
class Timeouts:
    """Connect and read timeouts in seconds, for one kind of call."""

    connect: float = 3.0
    read: float = 5.0

    def as_tuple(self) -> tuple[float, float]:
        return (self.connect, self.read)


class BearerAuth(requests.auth.AuthBase):
    """Attach ``Authorization: Bearer``; as an auth object it also keeps ~/.netrc out."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "BearerAuth(<redacted>)"


def make_session(*, retries: int, retry_statuses: bool, pool_size: int = 32,
                 cert: tuple[str, str] | None = None,
                 environ: Mapping[str, str] = os.environ) -> requests.Session:
    """A session whose retries are bounded and only for transient failures.

    ``retries`` counts connect errors (the request never left, so any method is safe);
    with ``retry_statuses`` the same budget also covers 429/502/503/504 answers. Read
    timeouts are never retried here: the caller decides whether the work is repeatable.
    ``read=False``, not 0: with 0 urllib3 wraps the read timeout in MaxRetryError, which
    requests turns into a ConnectionError, and a timeout would read as "not reachable".
    """
    policy = _BoundedRetry(
        total=retries, connect=retries, read=False, other=0, redirect=0,
        status=retries if retry_statuses else 0,
        status_forcelist=TRANSIENT_STATUSES if retry_statuses else None,
        allowed_methods=None,  # every method: only pre-send failures and transient statuses
        backoff_factor=0.2, backoff_max=2.0, backoff_jitter=0.1,
        respect_retry_after_header=True, retry_after_max=2,
        raise_on_status=False, raise_on_redirect=False,
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=policy, pool_connections=4, pool_maxsize=pool_size)
    session.mount("https://", adapter)
    session.mount("http://", _RefuseAdapter())
    session.cert = cert
    extra_ca = environ.get("SSL_CERT_FILE")
    if extra_ca and not (environ.get("REQUESTS_CA_BUNDLE") or environ.get("CURL_CA_BUNDLE")):
        session.verify = extra_ca
    return session


class _BoundedRetry(Retry):
    """A Retry that gives up at once when the server asks to wait longer than the budget.

    urllib3 would wait ``retry_after_max`` and try again; a server that says "come back in
    two minutes" is not helped by that, and the user is better served by a fast 503.
    """

    def increment(self, method: str | None = None, url: str | None = None,  # type: ignore[override]
                  response: Any = None, error: Exception | None = None, _pool: Any = None,
                  _stacktrace: Any = None) -> Retry:
        if response is not None and _asked_wait(response) > self.retry_after_max:
            raise MaxRetryError(_pool, url or "", ResponseError("Retry-After beyond the retry budget"))
        return super().increment(method, url, response, error, _pool, _stacktrace)


def _asked_wait(response: Any) -> float:
    """The server's Retry-After in seconds, uncapped (urllib3's own parse caps it)."""
    value = response.headers.get("Retry-After")
    if value is None:
        return 0.0
    try:
        return _UNCAPPED.parse_retry_after(value)
    except InvalidHeader:
        return 0.0


_UNCAPPED = Retry(retry_after_max=10**9)


class CircuitBreaker:
    """Stops calling a dependency that failed ``threshold`` times in a row, for ``cooldown`` s.

    Only transient failures count (connection errors, timeouts, 5xx, 429); a refusal (4xx)
    means the dependency works. After the cooldown calls go through again; one more
    failure opens it at once. Written here rather than taken from a library because it is
    a dozen lines and must share the clock and the failure classification of the callers.
    """

    def __init__(self, *, threshold: int = 5, cooldown: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._threshold, self._cooldown, self._clock = threshold, cooldown, clock
        self._failures = 0
        self._open_until = float("-inf")
        self._lock = threading.Lock()

    def seconds_open(self) -> int:
        """0 when calls may go through, else the seconds until they may again."""
        left = self._open_until - self._clock()
        return math.ceil(left) if left > 0 else 0

    def record(self, *, failed: bool) -> None:
        with self._lock:
            if not failed:
                self._failures = 0
                return
            self._failures += 1
            if self._failures >= self._threshold:
                self._open_until = self._clock() + self._cooldown


class _RefuseAdapter(HTTPAdapter):
    """Plain http is never used for tokens: refuse before anything is sent."""

    def send(self, request: requests.PreparedRequest, *args: object, **kwargs: object) -> requests.Response:
        raise requests.exceptions.InvalidURL("plain http is refused; only https is allowed")


def retry_after_of(response: requests.Response) -> int | None:
    """The server's Retry-After in whole seconds (the delay form only), or None."""
    value = response.headers.get("Retry-After", "").strip()
    return min(int(value), 3600) if value.isdigit() else None


def read_capped(response: requests.Response, limit: int) -> tuple[bytes, bool]:
    """Read at most ``limit`` bytes of a streamed response; return (body, truncated)."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(chunk_size=16384):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            response.close()
            return b"".join(chunks)[:limit], True
    return b"".join(chunks), False


def client_cert_files(certificate: str, key: str) -> tuple[str, str]:
    """Write an X.509 client certificate and key to private files, for mTLS.

    Python's ssl module loads client certificates only from files. The directory is
    created with mode 0700 and the files 0600, and they live as long as the process.
    """
    folder = tempfile.mkdtemp(prefix="mtls-")
    paths = []
    for name, text in (("cert.pem", certificate), ("key.pem", key)):
        path = os.path.join(folder, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        paths.append(path)
    return paths[0], paths[1]
