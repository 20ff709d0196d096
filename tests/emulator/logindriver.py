"""Drives the emulator's login as a browser and an OAuth client would, over real HTTP with
requests: authorization request with PKCE, the login page's form, the callback, the token
endpoint. Shared by test_login.py and test_login_attacks.py."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

import requests
from flask import Flask
from joserfc import jws, jwt
from joserfc.jwk import KeySet

from emulator.state import EmulatorState
from tests.emulator.conftest import RunningEmulator, start_emulator

LOCAL = "http://localhost:5000"  # a gateway origin, as `python -m emulator run --gateway-origin` takes it
CALLBACK = LOCAL + "/login/callback"  # the deployed redirect path, on that origin
LOGOUT_PAGE = LOCAL + "/logout.html"  # the deployed post-logout path, on that origin


def start_local(workspace: Path) -> RunningEmulator:
    """An emulator whose IAS and XSUAA clients have the local gateway's URIs registered."""
    return start_emulator(workspace, local_origins=(LOCAL,))


def emulator_state(emulator: RunningEmulator) -> EmulatorState:
    return cast(Flask, emulator.app).extensions["emulator"]


def pkce() -> tuple[str, str]:
    """A code verifier and its S256 challenge (RFC 7636 §4.1, §4.2), computed independently."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def query(response: requests.Response) -> dict[str, str]:
    """The parameters of a redirect's Location (each given once)."""
    params = parse_qs(urlsplit(response.headers["Location"]).query, keep_blank_values=True)
    assert all(len(v) == 1 for v in params.values()), params
    return {k: v[0] for k, v in params.items()}


def location_base(response: requests.Response) -> str:
    return response.headers["Location"].split("?", 1)[0]


def request_id(page: requests.Response) -> str:
    match = re.search(r'name="request" value="([^"]+)"', page.text)
    assert match, page.text
    return match.group(1)


def decode(token: str, jwks: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of a token, its signature verified against ``jwks``."""
    header = jws.extract_compact(token.encode()).protected
    return header, jwt.decode(token, KeySet.import_key_set(jwks), algorithms=["RS256"]).claims


@dataclass
class Browser:
    """One user agent (its own cookie jar) plus the client that sent it to log in."""

    emulator: RunningEmulator
    service: str  # "ias" | "xsuaa"
    http: requests.Session = field(default_factory=requests.Session)
    verifier: str = ""
    state: str = ""
    nonce: str = ""

    @property
    def client(self) -> Any:
        cfg = self.emulator.config
        return cfg.ias_app if self.service == "ias" else cfg.app

    @property
    def origin(self) -> str:
        """Where the browser meets the service: IAS's login is on the plain-http browser origin."""
        urls = self.emulator.config.urls
        return urls.browser if self.service == "ias" else urls.xsuaa

    @property
    def paths(self) -> tuple[str, str]:
        """The authorization endpoint and the login form's action."""
        if self.service == "ias":
            return "/oauth2/authorize", "/oauth2/login"
        return "/oauth/authorize", "/login.do"

    @property
    def issuer(self) -> str:
        urls = self.emulator.config.urls
        return urls.ias if self.service == "ias" else urls.xsuaa_issuer

    def get(self, url: str, **params: Any) -> requests.Response:
        return self.http.get(url, params=params, verify=self.emulator.pki.ca_file, allow_redirects=False,
                             timeout=5)

    def authorize(self, **overrides: Any) -> requests.Response:
        """Send the authorization request; a None override leaves the parameter out."""
        self.verifier, challenge = pkce()
        self.state, self.nonce = secrets.token_urlsafe(12), secrets.token_urlsafe(12)
        params = {"response_type": "code", "client_id": self.client.client_id, "redirect_uri": CALLBACK,
                  "state": self.state, "nonce": self.nonce, "scope": "openid",
                  "code_challenge": challenge, "code_challenge_method": "S256"}
        params.update(overrides)
        return self.get(self.origin + self.paths[0], **{k: v for k, v in params.items() if v is not None})

    def submit(self, page: requests.Response, **form: str) -> requests.Response:
        return self.http.post(self.origin + self.paths[1], data={"request": request_id(page), **form},
                              verify=self.emulator.pki.ca_file, allow_redirects=False, timeout=5)

    def login(self, user: str = "jane", **overrides: Any) -> dict[str, str]:
        """Authorize, pick ``user`` on the login page; the callback's parameters."""
        page = self.authorize(**overrides)
        assert page.status_code == 200, page.text
        answer = self.submit(page, user=user)
        assert answer.status_code == 302 and location_base(answer) == CALLBACK, answer.headers
        return query(answer)

    def token(self, data: dict[str, str], *, secret: str | None = None, basic: bool = True
              ) -> requests.Response:
        """POST to the service's token endpoint, client secret in Basic auth or in the form."""
        cfg, client = self.emulator.config, self.client
        url = cfg.urls.ias + "/oauth2/token" if self.service == "ias" else cfg.urls.xsuaa + "/oauth/token"
        secret = client.secret if secret is None else secret
        auth = (client.client_id, secret) if basic else None
        form = data if basic else {"client_id": client.client_id, "client_secret": secret, **data}
        return requests.post(url, data=form, auth=auth, verify=self.emulator.pki.ca_file, timeout=5)

    def redeem(self, code: str, **overrides: str) -> requests.Response:
        data = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK,
                "code_verifier": self.verifier, **overrides}
        return self.token({k: v for k, v in data.items() if v is not None})

    def refresh(self, refresh_token: str) -> requests.Response:
        return self.token({"grant_type": "refresh_token", "refresh_token": refresh_token})

    def jwks(self) -> dict[str, Any]:
        cfg = self.emulator.config
        url = cfg.urls.ias + "/oauth2/certs" if self.service == "ias" else cfg.urls.xsuaa + "/token_keys"
        return requests.get(url, verify=self.emulator.pki.ca_file, timeout=5).json()
