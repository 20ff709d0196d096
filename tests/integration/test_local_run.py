"""``./dev run`` (``python -m emulator.local_run``) as a developer uses it: it starts the
emulator and the app, prints curl lines that work, and Ctrl-C leaves no process behind."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.integration.gateway_browser import landing_target
from tests.integration.local_stack import (
    READY_LINE,
    START_DEADLINE_S,
    STOP_DEADLINE_S,
    Output,
    alive,
    descendants,
    started_local_run,
)

pytestmark = pytest.mark.integration

JANE = "jane.doe@example.com"


@pytest.fixture
def local_run(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Output, dict[str, str]]]:
    with started_local_run(tmp_path / "workspace") as started:
        yield started


def test_dev_run_serves_jane_through_the_printed_curl_lines_and_stops_cleanly(local_run) -> None:
    process, output, env = local_run
    output.until(READY_LINE, START_DEADLINE_S)
    banner = "\n".join(output.lines)

    # What runs where, and the users from users.json with what they can do.
    assert f"http://localhost:{env['APP_PORT']}" in banner
    assert f"https://localhost:{env['EMULATOR_HTTPS_PORT']}" in banner
    assert re.search(r"^ +jane / jane +the iFlow answers$", banner, re.M), banner
    assert re.search(r"^ +john / john +lacks Ntif\.Read", banner, re.M), banner

    token_line = next(line.strip() for line in output.lines if line.strip().startswith("TOKEN=$(curl"))
    json_line, html_line = (line.strip() for line in output.lines if line.strip().startswith("curl -H"))
    assert "Accept: application/json" in json_line and "Accept" not in html_line

    # The printed lines, run as printed.
    if shutil.which("curl") and shutil.which("bash"):
        as_json = run_shell(f"{token_line}\n{json_line}", env)
        page = json.loads(as_json)
        assert page["error"] is None and page["iflow"]["status"] == 200, page
        assert json.loads(page["iflow"]["body"])["user"] == JANE
        html = run_shell(f"{token_line}\n{html_line}", env)
        assert html.lstrip().lower().startswith("<!doctype html>") and JANE in html

    # Their requests equivalent, from the printed URLs, for the statuses.
    cacert = re.search(r"--cacert (\S+)", token_line)[1]
    token_url = re.search(r"(https://\S+/_emu/token)", token_line)[1]
    app_url = re.search(r"(http://\S+/homepage)$", json_line)[1]
    assert Path(cacert) == Path(env["EMULATOR_WORKSPACE"]) / "ca.pem"
    with requests.Session() as session:
        session.trust_env = False
        minted = session.post(token_url, data={"user": "jane", "kind": "ias"}, verify=cacert, timeout=10)
        assert minted.status_code == 200
        headers = {"Authorization": f"Bearer {minted.text}"}
        answer = session.get(app_url, headers={**headers, "Accept": "application/json"}, timeout=30)
        assert answer.status_code == 200, answer.text
        assert json.loads(answer.json()["iflow"]["body"])["user"] == JANE
        page = session.get(app_url, headers=headers, timeout=30)
        assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")

    # The printed browser URL: through the gateway, with the emulator's login page, to the iFlow.
    gateway_url = re.search(r"^ +(http://\S+/homepage) +IAS login$", banner, re.M)[1]
    assert gateway_url == f"http://localhost:{env['GATEWAY_PORT']}/homepage"
    assert JANE in browser_login(gateway_url, "jane")

    # Ctrl-C: every child (and gunicorn's worker) is gone, and the ports are free again.
    children = descendants(process.pid)
    assert any(" -m emulator run " in cmd for cmd in children.values()), children
    assert any(" -m gateway" in cmd for cmd in children.values()), children
    assert sum(" -m gunicorn " in cmd for cmd in children.values()) >= 2, children  # master and worker
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=STOP_DEADLINE_S) == 0
    assert output.rest().endswith("Stopped.")
    assert [pid for pid in children if alive(pid)] == []


def browser_login(url: str, user: str) -> str:
    """Open ``url`` as a browser would, log in as ``user`` on the emulator's page; the page.

    The cookies are carried by hand: the gateway's are Secure, which browsers send to
    http://localhost but Python's cookie jar does not.
    """
    cookies: dict[str, str] = {}

    def go(method: str, target: str, **kwargs: object) -> requests.Response:
        answer = requests.request(method, target, allow_redirects=False, timeout=30,
                                  cookies=cookies, **kwargs)  # type: ignore[arg-type]
        cookies.update(answer.cookies.get_dict())
        return answer

    authorize = go("GET", url).headers["Location"]
    page = go("GET", authorize)
    request_id = re.search(r'name="request" value="([^"]+)"', page.text)[1]
    origin = authorize.split("/oauth2/", 1)[0]
    callback = go("POST", origin + "/oauth2/login", data={"request": request_id, "user": user})
    back = go("GET", callback.headers["Location"])
    assert back.status_code == 200 and landing_target(back.text) == "/homepage", back.text
    landed = go("GET", url, headers={"Accept": "application/json"})
    assert landed.status_code == 200, landed.text
    return landed.text


def run_shell(script: str, env: dict[str, str]) -> str:
    done = subprocess.run(["bash", "-c", f"set -euo pipefail\n{script}"],  # noqa: S603, S607 - the printed lines
                          env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout
