"""Helpers for the in-process app tests: request headers and the mocked upstream answers."""

from __future__ import annotations

import responses

from tests import factories as f

IFLOW_URL = f.CPI_URL + "/http/ntif"
DISCOVERY_URL = f.IAS_ISSUER + "/.well-known/openid-configuration"
JSON = {"Accept": "application/json"}


def bearer(token: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **headers}


def exchanged(**changes: object) -> dict:
    return {"access_token": f.sign(f.exchanged_claims(**changes)), "token_type": "bearer",
            "expires_in": 3600}


def token_call(mock: responses.RequestsMock, **kwargs: object) -> None:
    mock.post(f.XSUAA_TOKEN_URL, **(kwargs or {"json": exchanged()}))


def iflow_call(mock: responses.RequestsMock, **kwargs: object) -> None:
    mock.post(IFLOW_URL, **(kwargs or {"json": {"echo": "ok"},
                                       "headers": {"sap_messageprocessinglogid": "MPL-1"}}))
