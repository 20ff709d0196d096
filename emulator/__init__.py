"""A local SAP BTP subaccount for development and tests: IAS, XSUAA and the CPI runtime,
configured from the files we deploy (xs-security.json, config-cpi.json, config-ias.json)
and a users file. Run it with ``python -m emulator``."""

from __future__ import annotations

from flask import Flask, Response, request

from emulator import admin, cpi, ias, login, xsuaa
from emulator.config import EmulatorConfig
from emulator.errors import register_error_handler
from emulator.state import EmulatorState, state

__all__ = ["create_app"]


def create_app(config: EmulatorConfig) -> Flask:
    """The emulator as one WSGI app; every service answers under its own paths."""
    app = Flask(__name__)
    app.extensions["emulator"] = EmulatorState.create(config)
    for blueprint in (xsuaa.bp, ias.bp, cpi.bp, admin.bp):
        app.register_blueprint(blueprint)
    login.init_app(app)
    register_error_handler(app)
    app.after_request(_record)
    return app


def _record(response: Response) -> Response:
    """Remember what was asked and answered (never a credential), for tests and demos."""
    if not request.path.startswith("/_emu"):
        state().requests.append({"method": request.method, "path": request.path,
                                 "grant_type": request.form.get("grant_type"),
                                 "status": response.status_code})
    return response
