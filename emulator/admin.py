"""The emulator's own controls, on loopback only: faults, key rotation, token lifetimes,
a token for a user (for curl and tests, as SAP's Java test kit mints them), the request log."""

from __future__ import annotations

from flask import Blueprint, Response, abort, jsonify, request

from emulator.faults import Fault
from emulator.state import state

__all__ = ["bp"]

bp = Blueprint("admin", __name__, url_prefix="/_emu")


@bp.get("/health")
def health() -> Response:
    return jsonify(status="UP")


@bp.post("/faults")
def add_fault() -> Response:
    spec = request.get_json(silent=True) or {}
    allowed = set(Fault.__dataclass_fields__) - {"used"}
    unknown = set(spec) - allowed
    if unknown or "endpoint" not in spec:
        abort(400, f"a fault needs 'endpoint' and takes only {sorted(allowed)}")
    state().faults.add(Fault(**spec))
    return jsonify(faults=state().faults.active())


@bp.delete("/faults")
def clear_faults() -> Response:
    state().faults.clear()
    return jsonify(faults=[])


@bp.post("/keys/rotate")
def rotate_keys() -> Response:
    spec = request.get_json(silent=True) or {}
    st = state()
    ring = {"xsuaa": st.xsuaa_keys, "ias": st.ias_keys}.get(spec.get("service", "xsuaa"))
    if ring is None:
        abort(400, "service is 'xsuaa' or 'ias'")
    kid = ring.rotate(float(spec.get("overlap", 300)))
    return jsonify(signing_kid=kid, published=[k["kid"] for k in ring.jwks()["keys"]])


@bp.post("/lifetimes")
def lifetimes() -> Response:
    spec = request.get_json(silent=True) or {}
    cfg = state().config
    cfg.token_validity = int(spec.get("xsuaa", cfg.token_validity))
    cfg.ias_token_validity = int(spec.get("ias", cfg.ias_token_validity))
    return jsonify(xsuaa=cfg.token_validity, ias=cfg.ias_token_validity)


@bp.post("/claims")
def claim_overrides() -> Response:
    """Claims written into every following token (wrong aud/iss, expired...), {} to stop."""
    overrides = request.get_json(silent=True)
    if not isinstance(overrides, dict):
        abort(400, "a JSON object of claims")
    state().tokens.overrides = overrides
    return jsonify(overrides=overrides)


@bp.post("/token")
def mint() -> Response:
    """A token as if ``user`` had logged in: ``{"user": "jane", "kind": "ias" | "xsuaa"}``."""
    spec = request.get_json(silent=True) or request.form
    st = state()
    user = st.config.user_by_login(str(spec.get("user", "")))
    if user is None:
        abort(404, "no such user (see the users file)")
    if spec.get("kind", "ias") == "ias":
        token, _ = st.tokens.ias_id_token(user)
    else:
        cfg = st.config
        scopes = (cfg.user_scopes(user) | {"openid"}) & cfg.app.scopes
        token, _ = st.tokens.xsuaa_user_token(user, cfg.app, scopes, grant_type="authorization_code",
                                              origin="sap.custom")
    return Response(token, content_type="text/plain; charset=utf-8", headers={"Cache-Control": "no-store"})


@bp.get("/requests")
def requests_log() -> Response:
    return jsonify(requests=list(state().requests))
