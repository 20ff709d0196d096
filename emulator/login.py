"""Interactive login of the emulated IAS and XSUAA (authorization code + PKCE, refresh,
userinfo, logout). Filled in by the login work; registers nothing yet."""

from __future__ import annotations

from flask import Flask

__all__ = ["init_app"]


def init_app(app: Flask) -> None:
    """Register the login routes and the code/refresh grants on ``app``."""
