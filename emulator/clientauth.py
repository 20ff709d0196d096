"""Client authentication at a token endpoint, as UAA does it (RFC 6749 §2.3).

HTTP Basic (form-encoded id and secret when ``X-CF-ENCODED-CREDENTIALS: true``), the
secret in the form (client_secret_post), or a client certificate (mTLS, x509 bindings):
the certificate the TLS handshake verified must be the one registered for the client.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ssl
from urllib.parse import unquote

from flask import Request

from emulator.config import Client, EmulatorConfig
from emulator.errors import invalid_client, unauthorized

__all__ = ["authenticate_client"]


def authenticate_client(config: EmulatorConfig, request: Request, clients: tuple[Client, ...]) -> Client:
    """The client that authenticated; raise 401 ``unauthorized``/``invalid_client`` otherwise."""
    client = _by_certificate(request, clients) or _by_secret(request, clients)
    if client is None:
        raise unauthorized("Bad credentials")
    named = request.form.get("client_id")
    if named is not None and named != client.client_id:
        raise invalid_client("Given client ID does not match authenticated client")
    return client


def _by_secret(request: Request, clients: tuple[Client, ...]) -> Client | None:
    header = request.headers.get("Authorization", "")
    if header[:6].lower() == "basic ":
        try:
            client_id, _, secret = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        if request.headers.get("X-CF-ENCODED-CREDENTIALS", "").lower() == "true":
            client_id, secret = unquote(client_id), unquote(secret)
    else:
        client_id, secret = request.form.get("client_id", ""), request.form.get("client_secret", "")
    client = next((c for c in clients if c.client_id == client_id), None)
    if client is None or not secret:
        return None
    return client if hmac.compare_digest(client.secret.encode(), secret.encode()) else None


def _by_certificate(request: Request, clients: tuple[Client, ...]) -> Client | None:
    sock = request.environ.get("werkzeug.socket")
    peer = sock.getpeercert(binary_form=True) if isinstance(sock, ssl.SSLSocket) else None
    if not peer:
        return None
    pem = ssl.DER_cert_to_PEM_cert(peer)
    return next((c for c in clients if c.certificate_pem and _same_cert(c.certificate_pem, pem)), None)


def _same_cert(a: str, b: str) -> bool:
    return ssl.PEM_cert_to_DER_cert(a.strip()) == ssl.PEM_cert_to_DER_cert(b.strip())
