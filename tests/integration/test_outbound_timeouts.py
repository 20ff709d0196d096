"""What the outbound sessions make of a server that accepts a request and never answers: a
read timeout (so the app can say "did not answer in time", 504), sent once and not retried.
A real TLS socket on loopback; ``responses`` would raise the exception the test is about."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator

import pytest
import requests

from seccore import make_session
from tests.integration.servers import Pki

pytestmark = pytest.mark.integration


class SilentServer:
    """Accepts TLS connections, reads the request, answers nothing; counts the connections."""

    def __init__(self, pki: Pki) -> None:
        self.connections = 0
        self._tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._tls.load_cert_chain(pki.cert_file, pki.key_file)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._open: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            try:
                conn = self._tls.wrap_socket(raw, server_side=True)
                conn.recv(65536)
                self._open.append(conn)  # held open, unanswered
            except OSError:
                raw.close()

    def close(self) -> None:
        self._listener.close()
        for conn in self._open:
            conn.close()


@pytest.fixture
def silent(pki: Pki) -> Iterator[SilentServer]:
    server = SilentServer(pki)
    yield server
    server.close()


@pytest.mark.parametrize("retry_statuses", [True, False], ids=["exchange session", "iFlow session"])
def test_a_server_that_never_answers_is_a_read_timeout_sent_once(silent: SilentServer, pki: Pki,
                                                                 retry_statuses: bool) -> None:
    session = make_session(retries=2, retry_statuses=retry_statuses, environ={})
    with pytest.raises(requests.ReadTimeout):
        session.post(f"https://localhost:{silent.port}/oauth/token", data={"a": "b"},
                     timeout=(2.0, 0.3), verify=str(pki.ca_file))
    assert silent.connections == 1  # not repeated: the first may have done its work
