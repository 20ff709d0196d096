"""The emulated XSUAA token endpoint and CPI over real HTTPS: UAA's jwt-bearer semantics."""

from __future__ import annotations

import requests

from tests.emulator.conftest import RunningEmulator

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def mint(emulator: RunningEmulator, user: str, kind: str) -> str:
    return requests.post(emulator.https + "/_emu/token", json={"user": user, "kind": kind},
                         verify=emulator.pki.ca_file, timeout=5).text


def exchange(emulator: RunningEmulator, assertion: str, secret: str | None = None) -> requests.Response:
    cpi = emulator.config.cpi
    return requests.post(emulator.https + "/oauth/token", verify=emulator.pki.ca_file, timeout=5,
                         data={"grant_type": JWT_BEARER, "assertion": assertion, "client_id": cpi.client_id},
                         auth=(cpi.client_id, secret or cpi.secret))


def test_an_ias_user_token_becomes_a_cpi_token_with_the_users_roles(emulator: RunningEmulator) -> None:
    answer = exchange(emulator, mint(emulator, "jane", "ias"))
    assert answer.status_code == 200, answer.text
    scope = answer.json()["scope"].split()
    assert f"{emulator.config.cpi_broker}.Ntif.Read" in scope
    iflow = requests.post(emulator.config.urls.cpi + "/http/ntif", data="hi", verify=emulator.pki.ca_file,
                          headers={"Authorization": "Bearer " + answer.json()["access_token"]}, timeout=5)
    assert iflow.status_code == 200 and iflow.json()["user"] == "jane.doe@example.com"
    assert iflow.headers["sap_messageprocessinglogid"]


def test_a_user_without_the_role_gets_a_token_that_cpi_refuses(emulator: RunningEmulator) -> None:
    answer = exchange(emulator, mint(emulator, "john", "ias"))
    assert answer.status_code == 200 and answer.json()["scope"] == "openid"
    iflow = requests.post(emulator.config.urls.cpi + "/http/ntif", verify=emulator.pki.ca_file, timeout=5,
                          headers={"Authorization": "Bearer " + answer.json()["access_token"]})
    assert iflow.status_code == 403 and "HTTP Status 403" in iflow.text


def test_a_wrong_secret_is_refused(emulator: RunningEmulator) -> None:
    answer = exchange(emulator, mint(emulator, "jane", "ias"), secret="wrong")
    assert answer.status_code == 401
    assert answer.json() == {"error": "unauthorized", "error_description": "Bad credentials"}


def test_the_apps_own_token_is_not_accepted_by_cpi(emulator: RunningEmulator) -> None:
    token = mint(emulator, "jane", "xsuaa")
    iflow = requests.post(emulator.config.urls.cpi + "/http/ntif", verify=emulator.pki.ca_file, timeout=5,
                          headers={"Authorization": "Bearer " + token})
    assert iflow.status_code == 401 and iflow.headers["WWW-Authenticate"].startswith("Bearer")
