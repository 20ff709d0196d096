"""The app under a real gunicorn, talking HTTPS to the local stand-ins of XSUAA and CPI.

One CA and one upstream server per test session; one gunicorn process per session whose
stderr goes to a file the tests read. The process trusts the local server only through
``REQUESTS_CA_BUNDLE`` (the test CA): certificate verification stays on.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests import factories
from tests.integration.processes import RunningApp, clean_environ, free_port, running_gunicorn
from tests.integration.servers import TOKEN_PATH, Pki, Upstream, make_pki


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@contextmanager
def running_upstream(pki: Pki) -> Iterator[Upstream]:
    """HTTPS stand-ins of XSUAA and CPI for the CPI client of the factories, stopped after."""
    server = Upstream(client_id=factories.CPI_CLIENT_ID, client_secret=factories.CPI_SECRET,
                      zone_id=factories.ZONE_ID)
    server.start(pki)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def upstream_server(pki: Pki) -> Iterator[Upstream]:
    with running_upstream(pki) as server:
        yield server


@pytest.fixture
def upstream(upstream_server: Upstream) -> Upstream:
    """The upstream server in its normal mode, with no calls recorded yet."""
    upstream_server.reset()
    return upstream_server


def vcap_services(upstream: Upstream) -> dict[str, Any]:
    """The xsuaa and it-rt bindings as Cloud Foundry writes them, pointing at the local server."""
    services = factories.vcap_services(with_ias=False)
    xsuaa = services["xsuaa"][0]["credentials"]
    # The app derives https://<uaadomain>/token_keys?zid=<zid>; the zone must be the tokens' zid.
    xsuaa.update(uaadomain=f"localhost:{upstream.port}", url=upstream.origin, zoneid=factories.ZONE_ID,
                 identityzoneid=factories.ZONE_ID)
    services["it-rt"][0]["credentials"]["oauth"].update(url=upstream.origin,
                                                        tokenurl=upstream.origin + TOKEN_PATH)
    return services


def app_environ(upstream: Upstream, pki: Pki, port: int) -> dict[str, str]:
    return clean_environ(PORT=str(port), VCAP_SERVICES=json.dumps(vcap_services(upstream)),
                         REQUESTS_CA_BUNDLE=str(pki.ca_file), LOG_FORMAT="json", WEB_CONCURRENCY="1",
                         GUNICORN_THREADS="4")


@pytest.fixture(scope="session")
def gunicorn_app(upstream_server: Upstream, pki: Pki,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    log_path = tmp_path_factory.mktemp("gunicorn") / "stderr.log"
    with running_gunicorn(app_environ(upstream_server, pki, free_port()), log_path) as app:
        yield app


# The gateway tests' stack (emulator, echo upstream, start_gateway) and a throwaway redis-server,
# for every module here.
from tests.gateway.conftest import throwaway_redis  # noqa: E402, F401 - a redis-server of one test
from tests.integration.gateway_stack import (  # noqa: E402, F401
    echo,
    echo_server,
    emulator,
    gateway_port,
    routes_file,
    start_gateway,
)
