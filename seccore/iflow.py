"""The call of a CPI iFlow through its HTTPS sender adapter: ``POST <url>/http/<path>``.

The exchanged token goes as ``Authorization: Bearer``; a correlation id goes along. The
iFlow's answer is read up to ``MAX_BODY_BYTES`` and never followed through a redirect. A
POST is not retried once sent (an iFlow may have side effects); connect errors are.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import requests

from seccore.bindings import CpiBinding
from seccore.errors import IflowError
from seccore.outbound import BearerAuth, CircuitBreaker, Timeouts, read_capped, retry_after_of

__all__ = ["IflowClient", "IflowResult", "MAX_BODY_BYTES"]

MAX_BODY_BYTES = 1024 * 1024
#: Response headers worth showing: CPI's message processing log ids and the content type.
SHOWN_HEADERS = ("content-type", "sap_messageprocessinglogid", "sap_mplcorrelationid")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IflowResult:
    status: int
    headers: dict[str, str]
    body: str
    truncated: bool
    took_ms: float
    retry_after: int | None = None


class IflowClient:
    """Calls one iFlow path of the bound CPI runtime."""

    def __init__(self, cpi: CpiBinding, path: str, session: requests.Session, *,
                 timeouts: Timeouts = Timeouts(connect=3.0, read=30.0),
                 breaker: CircuitBreaker | None = None) -> None:
        self._url = cpi.url + path
        self._breaker = breaker or CircuitBreaker()
        self._session = session
        self._timeouts = timeouts

    @property
    def url(self) -> str:
        return self._url

    def call(self, token: str, payload: bytes, content_type: str, correlation_id: str) -> IflowResult:
        """POST ``payload``; return the answer, or raise IflowError for a failed call."""
        headers = {"Content-Type": content_type, "x-correlationid": correlation_id,
                   "Accept": "application/json, text/plain;q=0.9, */*;q=0.5"}
        wait = self._breaker.seconds_open()
        if wait:
            raise IflowError("the CPI runtime failed several times in a row; it is not called for a moment",
                             "retry in a moment", status=503, retry_after=wait)
        started = time.perf_counter()
        try:
            result = self._post(payload, headers, token, started)
        except requests.RequestException as exc:
            self._breaker.record(failed=True)
            raise _network_error(exc) from exc
        # Only an unavailable runtime counts: an iFlow's own 500 is about this message.
        self._breaker.record(failed=result.status in (502, 503, 504))
        if result.status >= 300:
            raise _diagnose(result, self._url)
        return result

    def _post(self, payload: bytes, headers: dict[str, str], token: str, started: float) -> IflowResult:
        with self._session.post(self._url, data=payload, headers=headers, auth=BearerAuth(token),
                                timeout=self._timeouts.as_tuple(), allow_redirects=False,
                                stream=True) as response:
            raw, truncated = read_capped(response, MAX_BODY_BYTES)
            return IflowResult(
                status=response.status_code,
                headers={h: response.headers[h] for h in SHOWN_HEADERS if h in response.headers},
                body=_decode(raw, response.encoding), retry_after=retry_after_of(response),
                truncated=truncated, took_ms=(time.perf_counter() - started) * 1000)


def _network_error(exc: requests.RequestException) -> IflowError:
    if isinstance(exc, requests.exceptions.SSLError):
        # F-23 / ASVS5 16.3.4: the answer says "not trusted"; the log keeps the handshake's reason
        log.warning("TLS failure at the CPI runtime, certificate not trusted: %s", exc)
        return IflowError("the TLS certificate of the CPI runtime is not trusted",
                          "check the url of the CPI binding", status=502)
    if isinstance(exc, requests.exceptions.Timeout):
        return IflowError("the iFlow did not answer in time; its outcome is unknown",
                          "check the message monitor in CPI before sending again", status=504)
    return IflowError(f"the CPI runtime could not be reached ({type(exc).__name__})",
                      "check that the iFlow is deployed and the url of the CPI binding", status=503)


def _decode(raw: bytes, encoding: str | None) -> str:
    """The body as text; an unknown charset from the iFlow falls back to UTF-8."""
    try:
        return raw.decode(encoding or "utf-8", errors="replace")
    except LookupError:
        return raw.decode("utf-8", errors="replace")


def _diagnose(result: IflowResult, url: str) -> IflowError:
    status, body = result.status, result.body[:2000]
    kw = {"upstream_status": status, "upstream_body": body}
    if status == 401:
        return IflowError(
            "CPI did not accept the exchanged token (HTTP 401)",
            "the token must be issued to the CPI it-rt client: check that the CPI binding is the "
            "it-rt instance of this subaccount", status=502, **kw)
    if status == 403:
        return IflowError(
            "CPI refused the call (HTTP 403): the user lacks the role of the iFlow's sender "
            "adapter, or the iFlow's CSRF protection is on",
            "check the role in the HTTPS sender adapter against config-cpi.json \"roles\" and the "
            "user's role collections; switch off 'CSRF Protected' in the sender adapter",
            status=403, **kw)
    if status == 404:
        return IflowError(
            f"no iFlow answers at {url} (HTTP 404)",
            "deploy the iFlow, and check IFLOW_PATH against the sender adapter's Address",
            status=502, **kw)
    if status in (429, 502, 503, 504):
        return IflowError(f"the CPI runtime is unavailable (HTTP {status})", "retry later",
                          status=503, retry_after=result.retry_after, **kw)
    if 300 <= status < 400:
        return IflowError(f"the CPI runtime redirected (HTTP {status}); the redirect is not followed",
                          "check the url of the CPI binding", status=502, **kw)
    return IflowError(f"the iFlow failed (HTTP {status})",
                      "see the iFlow's answer below and its message processing log in CPI",
                      status=502, **kw)
