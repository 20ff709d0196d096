"""The emulated CPI runtime: ``POST /http/<address>`` through an HTTPS sender adapter.

As CPI does (btp-security.md §6): no, an invalid, an expired or a foreign token (not issued
to the it-rt client) → 401 with ``WWW-Authenticate: Bearer``; a valid token without the
sender adapter's role → 403 with Tomcat's HTML page; an unknown address → 404. Otherwise
the iFlow answers: by default it echoes the body and the propagated user.
"""

from __future__ import annotations

import uuid

from flask import Blueprint, Response, jsonify, request

from emulator.errors import OAuthError
from emulator.state import state
from emulator.xsuaa import verify

__all__ = ["bp"]

bp = Blueprint("cpi", __name__)

_FORBIDDEN = ("<!doctype html><html lang=\"en\"><head><title>HTTP Status 403 – Forbidden</title></head>"
              "<body><h1>HTTP Status 403 – Forbidden</h1></body></html>")


@bp.route("/http/<path:address>", methods=["POST", "PUT", "GET"])
def iflow(address: str) -> Response:
    st = state()
    if (fault := st.faults.apply("cpi.iflow")) is not None:
        return fault
    spec = next((s for p, s in st.config.iflows.items() if p.lower() == f"/http/{address}".lower()), None)
    if spec is None:
        return Response(f"Requested route ('{request.host}') does not exist.", status=404,
                        content_type="text/plain; charset=utf-8")
    claims = _authenticated()
    broker = st.config.cpi_broker
    if spec.role and f"{broker}.{spec.role}" not in (claims.get("scope") or []):
        return Response(_FORBIDDEN, status=403, content_type="text/html;charset=utf-8")
    mpl = "AGd" + uuid.uuid4().hex[:25]
    user = claims.get("user_name") or claims.get("client_id")
    response = jsonify(iflow=spec.path, user=user, grant_type=claims.get("grant_type"),
                       correlation_id=request.headers.get("x-correlationid"),
                       content_type=request.content_type, body=request.get_data(as_text=True)[:10_000])
    response.headers["sap_messageprocessinglogid"] = mpl
    response.headers["sap_mplcorrelationid"] = "AGd" + uuid.uuid4().hex[:25]
    response.headers["SapAuthenticatedUserName"] = str(user)
    return response


def _authenticated() -> dict:
    """The claims of a valid token issued to the CPI client; 401 otherwise."""
    st = state()
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise _unauthorised()
    try:
        claims = verify(st.xsuaa_keys, token)
    except OAuthError:
        raise _unauthorised() from None
    audiences = {a.split(".", 1)[0] for a in claims.get("aud") or [] if isinstance(a, str)}
    if not audiences & {st.config.cpi.client_id, st.config.cpi_broker}:
        raise _unauthorised()
    return claims


def _unauthorised() -> OAuthError:
    # CPI's Spring-style body, with its own spelling (sap-tutorials/Tutorials#7150)
    return OAuthError(401, "unauthorised",
                      "An Authentication object was not found in the SecurityContext")
