"""The pages: ``/homepage`` (token in, iFlow answer out) and ``/health``."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, current_app, jsonify, render_template, request

from app.auth import bearer_token
from app.claims import EXPLAIN, claim_rows, token_view
from app.flow import FlowResult
from seccore import CrossSiteRefused, ScopeMissing, TokenError
from seccore.logs import correlation_id, redact
from seccore.validation import fingerprint

__all__ = ["bp", "render_result"]

bp = Blueprint("pages", __name__)


@bp.get("/homepage")
def homepage() -> Response:
    """Validate the caller's token, exchange it, call the iFlow, and show all of it."""
    _refuse_side_effects_by_others()
    services = current_app.extensions["frontapp"]
    settings = services.settings
    result = services.flow.run(bearer_token(request), settings.iflow_payload.encode(),
                               settings.iflow_content_type, correlation_id.get())
    return render_result(result)


def _refuse_side_effects_by_others() -> None:
    """The page POSTs to the iFlow, so neither a HEAD nor another site's link may load it.

    Browsers send ``Sec-Fetch-Site`` on every request and scripts cannot forge it: a
    cross-site navigation (an <img>, a link on another site) carries the user's session
    through the gateway but is refused here.
    """
    if request.method == "HEAD":
        abort(405)
    if request.headers.get("Sec-Fetch-Site", "").lower() == "cross-site":
        raise CrossSiteRefused("a request from another site may not call the iFlow", step="validate")


@bp.get("/health")
def health() -> Response:
    """Liveness: the process serves requests (no token needed, nothing secret shown)."""
    return jsonify(status="UP")


def render_result(result: FlowResult) -> Response:
    """The result as HTML or JSON, with the status and headers its outcome calls for."""
    data = _view_model(result)
    if wants_json():
        response = jsonify(data)
    else:
        response = Response(render_template(
            "homepage.html", data=data, result=result, explain=EXPLAIN,
            user_rows=claim_rows(result.user.claims) if result.user else [],
            exchanged_rows=claim_rows(result.exchanged.claims) if result.exchanged else []))
    response.status_code = result.status
    _challenge(response, result)
    if result.error is not None and result.error.retry_after is not None:
        response.headers["Retry-After"] = str(result.error.retry_after)
    return response


def wants_json() -> bool:
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def _view_model(result: FlowResult) -> dict[str, Any]:
    bindings = current_app.extensions["frontapp"].settings.bindings
    user, exchanged, iflow = result.user, result.exchanged, result.iflow
    return {
        "status": result.status,
        "correlation_id": correlation_id.get(),
        "user_token": token_view(user.claims, user.header, user.kind, user.fingerprint, bindings)
        if user else None,
        "exchanged_token": token_view(exchanged.claims, exchanged.header, "xsuaa",
                                      fingerprint(exchanged.access_token), bindings)
        if exchanged else None,
        # What upstreams said is shown, but an echoed credential never is (XSS-09).
        "iflow": {"status": iflow.status, "headers": iflow.headers, "body": redact(iflow.body),
                  "truncated": iflow.truncated, "took_ms": round(iflow.took_ms, 1)} if iflow else None,
        "steps": [{"name": s.name, "outcome": s.outcome, "took_ms": round(s.took_ms, 1), "note": s.note}
                  for s in result.steps.values()],
        "error": _redacted(result.error.to_dict()) if result.error else None,
    }


def _challenge(response: Response, result: FlowResult) -> None:
    """RFC 6750 §3: tell the client which kind of token problem it has."""
    error = result.error
    if isinstance(error, TokenError) or (error is not None and error.status == 401):
        response.headers["WWW-Authenticate"] = (
            'Bearer realm="frontapp"' if error.code == "missing_token"
            else 'Bearer realm="frontapp", error="invalid_token"')
    elif isinstance(error, ScopeMissing):
        response.headers["WWW-Authenticate"] = 'Bearer realm="frontapp", error="insufficient_scope"'


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    return value


