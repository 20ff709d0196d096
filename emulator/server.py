"""Serving the emulator: HTTPS for every service (client certificates optional, for x509
bindings), plain HTTP for the browser-facing login pages; loopback only.

The sockets are bound first and the app attached after, because the app's configuration
(its issuer URLs) needs the ports.
"""

from __future__ import annotations

import ipaddress
import ssl
import threading
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from emulator.pki import Pki

__all__ = ["Servers", "bind"]

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # request lines carry codes and states in their query strings


class _Slot:
    """A WSGI app to be named later."""

    app: WsgiApp | None = None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        assert self.app is not None, "attach() the app before serving"
        return self.app(environ, start_response)


class Servers:
    def __init__(self, https: BaseWSGIServer, http: BaseWSGIServer, slot: _Slot) -> None:
        self.https, self.http, self._slot = https, http, slot
        self._threads = [threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
                         for s in (https, http)]

    @property
    def https_port(self) -> int:
        return self.https.server_port

    @property
    def http_port(self) -> int:
        return self.http.server_port

    def start(self, app: WsgiApp) -> Servers:
        self._slot.app = app
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        for server in (self.https, self.http):
            server.shutdown()
            server.server_close()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: only "localhost" is known to stay on this machine
        return False


def bind(pki: Pki, *, host: str = "127.0.0.1", https_port: int = 0, http_port: int = 0) -> Servers:
    """Bind both listeners (port 0: any free port); refuse anything but a loopback address."""
    if not _is_loopback(host):
        raise SystemExit(f"the emulator listens on loopback only, not {host}: it is no identity provider "
                         "that anybody else should trust")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(pki.cert_file, pki.key_file)
    context.load_verify_locations(pki.ca_file)
    context.verify_mode = ssl.CERT_OPTIONAL  # x509 clients present one; others need not
    slot = _Slot()
    https = make_server(host, https_port, slot, threaded=True, ssl_context=context,
                        request_handler=_QuietHandler)
    http = make_server(host, http_port, slot, threaded=True, request_handler=_QuietHandler)
    return Servers(https, http, slot)
