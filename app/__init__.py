"""frontapp: validates the user's JWT, exchanges it for a CPI token (jwt-bearer) and calls
an iFlow, showing both tokens and the answer. Start with ``gunicorn 'app:create_app()'``."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from urllib.parse import quote

from flask import Flask, Response, g, request

from app.errors import register_error_handlers
from app.flow import Flow
from app.settings import AppSettings
from app.views import bp
from seccore import (
    IflowClient,
    JwksCache,
    JwtBearerExchange,
    Timeouts,
    TokenValidator,
    client_cert_files,
    make_session,
)
from seccore.logs import configure_logging, correlation_id, new_correlation_id

__all__ = ["Services", "create_app"]

log = logging.getLogger(__name__)

#: Pages show claims: never cache them, never frame them, load nothing from elsewhere, run no
#: inline script or style (the page's script and stylesheet are files of this origin).
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class Services:
    settings: AppSettings
    validator: TokenValidator
    exchange: JwtBearerExchange
    flow: Flow


def create_app(settings: AppSettings | None = None) -> Flask:
    """Build the app; a bad configuration fails here, at start-up, with every problem named."""
    settings = settings or AppSettings.from_env()
    configure_logging(json_lines=settings.json_logs)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    app.extensions["frontapp"] = _services(settings)
    app.register_blueprint(bp)
    app.context_processor(lambda: {"logout_path": settings.logout_path})
    register_error_handlers(app)
    app.before_request(_start_request)
    app.after_request(_secure_response)
    return app


def _services(settings: AppSettings) -> Services:
    cpi = settings.bindings.cpi
    keys = JwksCache(make_session(retries=2, retry_statuses=True), timeouts=Timeouts(3.0, 5.0))
    validator = TokenValidator(jwks=keys, xsuaa=settings.bindings.xsuaa, ias=settings.bindings.ias,
                               required_scope=settings.required_scope, cache_size=settings.token_cache_size)
    cert = None
    if cpi.credentials.is_x509:
        cert = client_cert_files(cpi.credentials.certificate or "", cpi.credentials.key or "")
    exchange = JwtBearerExchange(cpi, make_session(retries=2, retry_statuses=True, cert=cert),
                                 timeouts=Timeouts(3.0, 10.0), cache_size=settings.token_cache_size)
    # A POST to an iFlow is not repeated once sent: only connect errors are retried.
    iflow = IflowClient(cpi, settings.iflow_path, make_session(retries=1, retry_statuses=False),
                        timeouts=Timeouts(3.0, 30.0))
    flow = Flow(validator, exchange, iflow, cpi, settings.cpi_role)
    return Services(settings=settings, validator=validator, exchange=exchange, flow=flow)


def _start_request() -> None:
    correlation_id.set(new_correlation_id(request.headers.get("x-correlationid")))
    g.started = time.perf_counter()


def _secure_response(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers["x-correlationid"] = correlation_id.get()
    # The path only (query strings may carry what does not belong in logs), percent-encoded
    # so that a CR/LF in it cannot forge a log line.
    took_ms = (time.perf_counter() - g.get("started", time.perf_counter())) * 1000
    log.info("%s %s %s", request.method, quote(request.path, safe="/:@!$&'()*+,;=-._~"),
             response.status_code, extra={"took_ms": round(took_ms, 1)})
    return response
