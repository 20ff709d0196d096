"""Local stand-ins for BTP, on real sockets: a CA made for the test run, and one HTTPS server
that plays XSUAA's key endpoint, XSUAA's token endpoint and a CPI iFlow on three paths.

The server checks what the real services check (grant type, client credentials, the bearer
token CPI gets) and records every call, so a test can assert what the app sent and what it
did not send. ``Mode`` switches it into the failures the tests walk through.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import os
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from tests import factories

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
JWKS_PATH = "/token_keys"
TOKEN_PATH = "/oauth/token"
IFLOW_PATH = "/http/ntif"


# --- PKI -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    ca_file: Path
    cert_file: Path
    key_file: Path


def make_pki(folder: Path) -> Pki:
    """A CA and a server certificate for ``localhost`` / ``127.0.0.1`` signed by it, as PEM files."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "frontapp integration test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pki = Pki(ca_file=folder / "ca.pem", cert_file=folder / "server.pem", key_file=folder / "server.key")
    pki.ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    pki.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    fd = os.open(pki.key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return pki


def _key_usage(*, digital_signature: bool = False, key_cert_sign: bool = False,
               crl_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=digital_signature, content_commitment=False,
                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                         key_cert_sign=key_cert_sign, crl_sign=crl_sign, encipher_only=False,
                         decipher_only=False)


# --- the server ----------------------------------------------------------------------------------


@dataclass
class Mode:
    """How the server behaves; a test changes it, the ``upstream`` fixture resets it."""

    #: a non-200 status makes the token endpoint refuse with ``token_error`` as its JSON body
    token_status: int = 200
    token_error: dict[str, str] = field(default_factory=dict)
    #: claim changes of the exchanged token (factories.exchanged_claims keywords)
    exchanged_changes: dict[str, Any] = field(default_factory=dict)
    #: a non-200 status makes the iFlow fail with it
    iflow_status: int = 200
    #: seconds the iFlow takes to answer (a slow iFlow, for the concurrency benchmark)
    iflow_delay: float = 0.0


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    form: dict[str, str]
    body: bytes
    #: what the server answered
    status: int
    #: why the server refused, when it refused on its own checks (not because of ``Mode``)
    refusal: str = ""


class Upstream:
    """XSUAA keys + XSUAA token endpoint + CPI iFlow, on one HTTPS server on 127.0.0.1."""

    def __init__(self, *, client_id: str, client_secret: str, zone_id: str) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.zone_id = zone_id
        self.mode = Mode()
        #: calls since the last ``reset``
        self.calls: list[Call] = []
        #: every call of the session (the app caches keys for the life of the process)
        self.history: list[Call] = []
        #: every access token the token endpoint handed out
        self.issued: list[str] = []
        self._lock = threading.Lock()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --

    def start(self, pki: Pki) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(pki.cert_file, pki.key_file)
        self._server = make_server("127.0.0.1", 0, self, threaded=True, request_handler=_QuietHandler,
                                   ssl_context=context)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="upstream-https", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def port(self) -> int:
        assert self._server is not None, "start() first"
        return self._server.server_port

    @property
    def origin(self) -> str:
        return f"https://localhost:{self.port}"

    def reset(self) -> None:
        with self._lock:
            self.mode = Mode()
            self.calls.clear()

    def calls_to(self, path: str, *, since_reset: bool = True) -> list[Call]:
        with self._lock:
            return [c for c in (self.calls if since_reset else self.history) if c.path == path]

    def refusals(self) -> list[str]:
        """What the server refused on its own checks since the reset: the app sent something wrong."""
        with self._lock:
            return [f"{c.method} {c.path}: {c.refusal}" for c in self.calls if c.refusal]

    # -- WSGI --

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        body = request.get_data(cache=True)
        route = {(JWKS_PATH, "GET"): self._keys, (TOKEN_PATH, "POST"): self._token,
                 (IFLOW_PATH, "POST"): self._iflow}.get((request.path, request.method))
        if route is None:
            response, refusal = Response("not found", status=404), f"no route {request.method} {request.path}"
        else:
            response, refusal = route(request, body)
        call = Call(method=request.method, path=request.path, query=dict(request.args),
                    headers=dict(request.headers), form=dict(request.form), body=body,
                    status=response.status_code, refusal=refusal)
        with self._lock:
            self.calls.append(call)
            self.history.append(call)
        return response(environ, start_response)

    def _keys(self, request: Request, _body: bytes) -> tuple[Response, str]:
        if request.args.get("zid") != self.zone_id:
            return _json({"error": "unknown zone"}, 404), f"token_keys for zid {request.args.get('zid')!r}"
        return _json(factories.jwks()), ""

    def _token(self, request: Request, _body: bytes) -> tuple[Response, str]:
        form = request.form
        if form.get("grant_type") != JWT_BEARER:
            return _json({"error": "unsupported_grant_type"}, 400), f"grant_type {form.get('grant_type')!r}"
        if not self._client_authenticated(request):
            return (_json({"error": "unauthorized", "error_description": "Bad credentials"}, 401),
                    "client authentication failed")
        if form.get("client_id") not in (None, self.client_id):
            return _json({"error": "invalid_client"}, 401), "client_id in the form is another client"
        assertion = form.get("assertion") or ""
        if assertion.count(".") != 2:
            return _json({"error": "invalid_request", "error_description": "assertion missing"}, 400), (
                "no assertion")
        with self._lock:
            mode = self.mode
        if mode.token_status != 200:
            return _json(mode.token_error, mode.token_status), ""
        try:  # as XSUAA does: the assertion must be signed by the zone's key
            user = jwt.decode(assertion, factories.rsa_key().public_key(), algorithms=["RS256"],
                              options={"verify_aud": False})
        except jwt.InvalidTokenError:
            return _json({"error": "invalid_token", "error_description": "Could not verify token signature."},
                         401), "assertion not signed by the zone's key"
        claims = factories.exchanged_claims(jti=uuid.uuid4().hex, user_name=user.get("user_name"),
                                            **mode.exchanged_changes)
        access_token = factories.sign(claims)
        with self._lock:
            self.issued.append(access_token)
        return _json({"access_token": access_token, "token_type": "bearer", "expires_in": 3600,
                      "scope": " ".join(claims.get("scope", [])), "jti": claims["jti"]}), ""

    def _client_authenticated(self, request: Request) -> bool:
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            client_id, colon, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        if request.headers.get("X-CF-ENCODED-CREDENTIALS", "").lower() == "true":
            # XSUAA form-decodes both parts when told so ('+' is a space, as in a form).
            client_id, secret = unquote_plus(client_id), unquote_plus(secret)
        return bool(colon) and client_id == self.client_id and secret == self.client_secret

    def _iflow(self, request: Request, body: bytes) -> tuple[Response, str]:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        with self._lock:
            known = scheme == "Bearer" and token in self.issued
            mode = self.mode
        if not known:
            return Response("Unauthorized", status=401), "no bearer token issued by the token endpoint"
        if mode.iflow_delay:
            time.sleep(mode.iflow_delay)  # the simulated work of a slow iFlow
        if mode.iflow_status != 200:
            return Response(f"iFlow answered {mode.iflow_status}", status=mode.iflow_status,
                            content_type="text/plain; charset=utf-8"), ""
        response = Response(body, status=200, content_type=request.content_type or "application/octet-stream")
        response.headers["sap_messageprocessinglogid"] = "AGd1cK-" + uuid.uuid4().hex[:20]
        return response, ""


def _json(data: object, status: int = 200) -> Response:
    return Response(json.dumps(data), status=status, content_type="application/json")


class _QuietHandler(WSGIRequestHandler):
    """No access log on the test's output; errors are still reported."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass
