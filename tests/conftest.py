"""Hermetic environment for every test: no binding or app variable leaks in from outside."""

from __future__ import annotations

import os

import pytest

PREFIXES = ("VCAP_", "CF_", "IFLOW_", "CPI_", "REQUIRED_SCOPE", "LOG_", "PORT",
            "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(PREFIXES):
            monkeypatch.delenv(name)
