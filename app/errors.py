"""One place that turns every failure into a page or JSON with a cause, a fix and the
correlation id; never a stack trace, a token or a secret."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, render_template
from werkzeug.exceptions import HTTPException

from app.flow import FlowResult
from seccore import SecurityError
from seccore.logs import correlation_id

__all__ = ["register_error_handlers"]

log = logging.getLogger(__name__)


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(SecurityError, _security_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)


def _security_error(exc: SecurityError) -> Response:
    from app.views import render_result

    if exc.step == "":
        exc.step = "validate"
    return render_result(FlowResult(error=exc))


def _http_error(exc: HTTPException) -> Response:
    return _plain(exc.code or 500, exc.name, exc.description or "")


def _unexpected(exc: Exception) -> Response:
    log.exception("unexpected error")
    return _plain(500, "Internal Server Error",
                  "the app failed unexpectedly; the log has the details under this correlation id")


def _plain(status: int, title: str, text: str) -> Response:
    from app.views import wants_json

    if wants_json():
        response = jsonify(error=title, cause=text, correlation_id=correlation_id.get())
    else:
        response = Response(render_template("error.html", status=status, title=title, text=text,
                                            correlation_id=correlation_id.get()))
    response.status_code = status
    return response
