"""Fixtures of the in-process app tests: the app, and its upstreams mocked with ``responses``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import responses
from flask.testing import FlaskClient

from app import create_app
from app.settings import AppSettings
from tests import factories as f
from tests.unit.app_helpers import DISCOVERY_URL


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(f.XSUAA_JWKS_URL, json=f.jwks())
        mock.get(DISCOVERY_URL, json={"issuer": f.IAS_ISSUER, "jwks_uri": f.IAS_JWKS_URL})
        mock.get(f.IAS_JWKS_URL, json=f.jwks(f.public_jwk("ias")))
        yield mock


@pytest.fixture
def client() -> FlaskClient:
    settings = AppSettings(bindings=f.bindings(), required_scope="$XSAPPNAME.Display", cpi_role="Ntif.Read")
    return create_app(settings).test_client()
