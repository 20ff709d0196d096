"""``./dev run`` (``python -m emulator.local_run``) as a developer uses it: it starts the
emulator and the app, prints curl lines that work, and Ctrl-C leaves no process behind."""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from emulator.local_run import READY_LINE
from tests.integration.processes import ROOT, clean_environ, free_port

pytestmark = pytest.mark.integration

START_DEADLINE_S = 90.0
STOP_DEADLINE_S = 30.0
JANE = "jane.doe@example.com"


class Output:
    """The process's merged stdout and stderr, read line by line as it comes."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._process = process
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def until(self, wanted: str, deadline_s: float) -> None:
        deadline = time.monotonic() + deadline_s
        while wanted not in self.lines:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no {wanted!r} within {deadline_s} s:\n" + "\n".join(self.lines))
            if line is None:
                pytest.fail(f"the process ended (status {self._process.wait()}) before {wanted!r}:\n"
                            + "\n".join(self.lines))
            self.lines.append(line)

    def close(self) -> None:
        """After the process ended: the reader reaches the end of the pipe, then the pipe closes."""
        self._reader.join(timeout=STOP_DEADLINE_S)
        assert self._process.stdout is not None
        self._process.stdout.close()

    def rest(self) -> str:
        while (line := self._queue.get(timeout=STOP_DEADLINE_S)) is not None:
            self.lines.append(line)
        return "\n".join(self.lines)


def environ(workspace: Path) -> dict[str, str]:
    ports: set[int] = set()
    while len(ports) < 4:
        ports.add(free_port())
    https, http, app, gateway = sorted(ports)
    return clean_environ(EMULATOR_HTTPS_PORT=str(https), EMULATOR_HTTP_PORT=str(http), APP_PORT=str(app),
                         GATEWAY_PORT=str(gateway), EMULATOR_WORKSPACE=str(workspace))


def descendants(pid: int) -> dict[int, str]:
    """Every process below ``pid``, with its command line (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = {}, [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            try:
                cmdline = (Path("/proc") / str(child) / "cmdline").read_bytes()
            except OSError:
                continue
            found[child] = cmdline.replace(b"\0", b" ").decode(errors="replace")
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        stat = (Path("/proc") / str(pid) / "stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture
def local_run(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Output, dict[str, str]]]:
    if not Path("/proc/self/stat").exists():
        pytest.skip("needs /proc to find the child processes")
    env = environ(tmp_path / "workspace")
    process = subprocess.Popen(  # noqa: S603 - a fixed argv of this interpreter
        [sys.executable, "-m", "emulator.local_run"], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = Output(process)
    started: dict[int, str] = {}
    try:
        yield process, output, env
    finally:
        if process.poll() is None:
            started = descendants(process.pid)
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=STOP_DEADLINE_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        output.close()
        for pid in started:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


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
    assert back.status_code == 302 and back.headers["Location"] == "/homepage", back.text
    landed = go("GET", url, headers={"Accept": "application/json"})
    assert landed.status_code == 200, landed.text
    return landed.text


def run_shell(script: str, env: dict[str, str]) -> str:
    done = subprocess.run(["bash", "-c", f"set -euo pipefail\n{script}"],  # noqa: S603, S607 - the printed lines
                          env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout
