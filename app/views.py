"""The pages: ``/homepage`` (token in, iFlow answer out; POST sends the user's payload) and
``/health``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Response, abort, current_app, jsonify, render_template, request

from app.auth import bearer_token
from app.claims import token_view
from app.comparison import Side, compare
from app.diagram import draw
from app.flow import FlowResult
from app.settings import AppSettings
from seccore import CrossSiteRefused, ScopeMissing, TokenError
from seccore.logs import correlation_id, redact
from seccore.validation import fingerprint

__all__ = ["Sent", "bp", "render_result"]

bp = Blueprint("pages", __name__)

#: What the form may send to the iFlow, and the content type CPI then receives.
PAYLOAD_TYPES = {"application/json": "application/json", "text/plain": "text/plain; charset=utf-8"}
#: The browser's path as the gateway saw it, shown in the diagram, cut to this length.
MAX_SHOWN_PATH = 200


@dataclass(frozen=True)
class Sent:
    """The payload that went to the iFlow, to show it again in the form."""

    text: str
    mimetype: str

    @classmethod
    def default(cls, settings: AppSettings) -> Sent:
        """IFLOW_PAYLOAD, what a GET of the page sends."""
        return cls(settings.iflow_payload, settings.iflow_content_type.split(";")[0])


@bp.get("/homepage")
def homepage() -> Response:
    """Validate the caller's token, exchange it, call the iFlow, and show all of it.

    Opened from another site (a link elsewhere; ``Sec-Fetch-Site`` cannot be forged by
    scripts), the page shows the tokens but does not call the iFlow: a GET must not let
    another site set it off with the user's session. HEAD is refused outright.
    """
    if request.method == "HEAD":
        abort(405)
    services = current_app.extensions["frontapp"]
    settings = services.settings
    result = services.flow.run(bearer_token(request), settings.iflow_payload.encode(),
                               settings.iflow_content_type, correlation_id.get(),
                               call_iflow=not _cross_site())
    return render_result(result, Sent.default(settings))


@bp.post("/homepage")
def send_payload() -> Response:
    """Send the user's payload (text or JSON, UTF-8, up to 64 KB) to the iFlow.

    Through the gateway this POST needs its CSRF token (the page's script fetches it); the
    app itself takes only a bearer token, which a browser never attaches on its own.
    """
    if _cross_site():
        raise CrossSiteRefused("a request from another site may not call the iFlow", step="validate")
    sent = _sent_payload()
    services = current_app.extensions["frontapp"]
    result = services.flow.run(bearer_token(request), sent.text.encode(), PAYLOAD_TYPES[sent.mimetype],
                               correlation_id.get())
    return render_result(result, sent)


def _sent_payload() -> Sent:
    if request.mimetype not in PAYLOAD_TYPES:
        abort(415, description="send the payload as text/plain or application/json")
    try:
        text = request.get_data(cache=False).decode("utf-8")
    except UnicodeDecodeError:
        abort(400, description="the payload is not UTF-8 text")
    if request.mimetype == "application/json":
        try:
            json.loads(text)
        except ValueError as exc:
            abort(400, description=f"the payload is not JSON: {exc.args[0].split(':')[0]}; "
                                   "send it as text, or correct it")
    return Sent(text, request.mimetype)


def _cross_site() -> bool:
    return request.headers.get("Sec-Fetch-Site", "").lower() == "cross-site"


@bp.get("/health")
def health() -> Response:
    """Liveness: the process serves requests (no token needed, nothing secret shown)."""
    return jsonify(status="UP")


def render_result(result: FlowResult, sent: Sent | None = None) -> Response:
    """The result as HTML or JSON, with the status and headers its outcome calls for."""
    data = _view_model(result)
    response = jsonify(data) if wants_json() else Response(_page(result, data, sent))
    response.status_code = result.status
    _challenge(response, result)
    if result.error is not None and result.error.retry_after is not None:
        response.headers["Retry-After"] = str(result.error.retry_after)
    return response


def _page(result: FlowResult, data: dict[str, Any], sent: Sent | None) -> str:
    services = current_app.extensions["frontapp"]
    flow, settings = services.flow, services.settings
    user, exchanged = data["user_token"], data["exchanged_token"]
    comparison = None
    if result.user is not None:
        comparison = compare(
            Side(result.user.claims, user["audiences"], result.user.scopes),
            Side(result.exchanged.claims, exchanged["audiences"], result.exchanged.scopes)
            if result.exchanged else None,
            cpi_role=settings.cpi_role, cpi_scope=flow.required_cpi_scope,
            role_present=flow.has_cpi_role(result.exchanged.scopes) if result.exchanged else None)
    path = request.headers.get("x-forwarded-path", request.path)[:MAX_SHOWN_PATH]
    drawing = draw(result, method=request.method, path=path, iflow_path=settings.iflow_path,
                   cpi_role=settings.cpi_role)
    sent = sent or Sent.default(settings)
    raw = {"user": user and user["claims"], "exchanged": exchanged and exchanged["claims"]}
    return render_template("homepage.html", data=data, comparison=comparison, drawing=drawing, sent=sent,
                           iflow_step=result.steps["iflow"],
                           raw={k: json.dumps(v, indent=2, ensure_ascii=False) for k, v in raw.items() if v})


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


