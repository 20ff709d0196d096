"""Outbound HTTPS: one ``requests`` session per purpose, with timeouts, bounded retries and
certificate verification that cannot be switched off.

Extra trusted CAs come only from the standard variables: ``REQUESTS_CA_BUNDLE`` /
``CURL_CA_BUNDLE`` (read by requests itself) or ``SSL_CERT_FILE``. That is how the local
emulator and the tests are trusted; there is no "insecure" switch.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

__all__ = ["BearerAuth", "Timeouts", "client_cert_files", "make_session", "read_capped"]

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
    """
    policy = Retry(
        total=retries, connect=retries, read=0, other=0, redirect=0,
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


class _RefuseAdapter(HTTPAdapter):
    """Plain http is never used for tokens: refuse before anything is sent."""

    def send(self, request: requests.PreparedRequest, *args: object, **kwargs: object) -> requests.Response:
        raise requests.exceptions.InvalidURL("plain http is refused; only https is allowed")


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
