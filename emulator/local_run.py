"""``./dev run``: the scenario on this machine in one command — the emulated subaccount (IAS,
XSUAA, CPI) and the app under gunicorn, wired as Cloud Foundry would wire them.

It lints the deploy files (warnings only), starts ``python -m emulator run``, waits for its
readiness line, starts gunicorn with the emulator's bindings and CA, waits for ``/health``,
then prints what runs where, the users, and a curl line that calls the app. Ctrl-C (or
SIGTERM, SIGHUP) stops both; so does either of them stopping on its own.

Settings (environment): EMULATOR_HTTPS_PORT (8443), EMULATOR_HTTP_PORT (8081), APP_PORT (8080),
EMULATOR_WORKSPACE (var/emulator: the CA, the bindings, the client secrets). The app also
takes its own variables (IFLOW_PATH, CPI_ROLE, ...) from the environment, except VCAP_*.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emulator.config import EmulatorConfig, Urls, load_config
from emulator.lint import lint

__all__ = ["Settings", "main"]

ROOT = Path(__file__).resolve().parent.parent
USERS_FILE = ROOT / "emulator" / "users.json"
#: The app's defaults (app/settings.py), for the banner; the app reads the same variables.
DEFAULT_IFLOW_PATH = "/http/ntif"
START_DEADLINE_S = 60.0
STOP_TIMEOUT_S = 10.0
POLL_S = 0.1
#: The line that ends the banner: everything runs.
READY_LINE = "Ctrl-C stops everything."

_PORTS = (("EMULATOR_HTTPS_PORT", 8443, "the emulator, HTTPS"),
          ("EMULATOR_HTTP_PORT", 8081, "the emulator, HTTP"),
          ("APP_PORT", 8080, "the app"),
          ("GATEWAY_PORT", 5000, "the gateway"))
_print_lock = threading.Lock()


def say(text: str = "") -> None:
    with _print_lock:
        print(text, flush=True)


class StartError(Exception):
    """Start-up failed; the message says why and what to do."""


@dataclass(frozen=True)
class Settings:
    https_port: int
    http_port: int
    app_port: int
    gateway_port: int
    workspace: Path

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        problems, ports = [], {}
        for name, default, _ in _PORTS:
            raw = environ.get(name, "").strip() or str(default)
            if not raw.isdigit() or not 0 < int(raw) < 65536:
                problems.append(f"{name}={raw!r} is not a port number (1-65535)")
                continue
            ports[name] = int(raw)
        seen: dict[int, str] = {}
        for name, port in ports.items():
            if port in seen:
                problems.append(f"{seen[port]} and {name} are both {port}: give each its own port")
            seen.setdefault(port, name)
        if problems:
            raise StartError("\n".join(problems))
        workspace = Path(environ.get("EMULATOR_WORKSPACE") or ROOT / "var" / "emulator").absolute()
        return cls(ports["EMULATOR_HTTPS_PORT"], ports["EMULATOR_HTTP_PORT"], ports["APP_PORT"],
                   ports["GATEWAY_PORT"], workspace)

    def taken_ports(self) -> list[str]:
        """What is wrong with each port something else listens on, with the variable to change it."""
        values = {"EMULATOR_HTTPS_PORT": self.https_port, "EMULATOR_HTTP_PORT": self.http_port,
                  "APP_PORT": self.app_port, "GATEWAY_PORT": self.gateway_port}
        return [f"port {values[name]} ({what}) is taken: stop what listens there, or choose another port, "
                f"e.g. {name}={_suggest(values[name])} ./dev run"
                for name, _, what in _PORTS if not _free(values[name])]


def _free(port: int) -> bool:
    # SO_REUSEADDR as both servers set it: a port in TIME_WAIT is free, a listening one is not.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _suggest(port: int) -> int:
    return next((p for p in range(port + 1000, port + 1100) if p < 65536 and _free(p)), port + 1)


class Child:
    """A child process in its own process group (so that the terminal's Ctrl-C reaches only
    us, and we stop the children in order), its output read line by line: kept until it is
    ready, then passed on with a prefix."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.proc = subprocess.Popen(  # noqa: S603 - a fixed argv of this interpreter
            argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, encoding="utf-8", errors="replace", bufsize=1,
            process_group=0)
        self.lines: queue.Queue[str] = queue.Queue()
        self.kept: list[str] = []
        self.forward = False
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, name=f"{name}-output", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._lock:
                if self.forward:
                    say(f"{self.name} | {line.rstrip()}")
                else:
                    self.kept.append(line)
                    self.lines.put(line)

    def passing_on(self, on: bool) -> None:
        with self._lock:
            self.forward = on

    def output(self) -> str:
        """The last lines it printed (all of them, once it has exited)."""
        if self.exited():
            self._reader.join(timeout=2)
        with self._lock:
            return "".join(self.kept[-40:])

    def exited(self) -> bool:
        return self.proc.poll() is not None

    def stop(self, sig: signal.Signals) -> None:
        """Signal it, wait, kill if it does not stop; then clear what is left in its group."""
        self.passing_on(False)
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                say(f"{self.name} did not stop within {STOP_TIMEOUT_S:.0f} s; killing it")
                self.proc.kill()
                self.proc.wait()
        # gunicorn's workers share its process group; none should outlive it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)


def main(argv: list[str] | None = None) -> int:
    paragraphs = __doc__.split("\n\n")
    parser = argparse.ArgumentParser(prog="./dev run",
                                     description="T" + paragraphs[0].removeprefix("``./dev run``: t"),
                                     epilog=paragraphs[2],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args(argv)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    children: list[Child] = []
    try:
        settings = Settings.from_env(os.environ)
        return _run(settings, stop, children)
    except StartError as exc:
        with _print_lock:
            print("./dev run cannot start:", *(f"  {line}" for line in str(exc).splitlines()),
                  sep="\n", file=sys.stderr, flush=True)
        return 1
    finally:
        running = any(not c.exited() for c in children)
        if running:
            say("Stopping the app and the emulator…")
        for child in reversed(children):  # the app first: it calls the emulator
            child.stop(signal.SIGINT if child.name == "app" else signal.SIGTERM)
        if running:
            say("Stopped.")


def _run(settings: Settings, stop: threading.Event, children: list[Child]) -> int:
    findings = lint(ROOT, USERS_FILE)
    if findings:
        say("Warning: the config has problems (python -m emulator lint); running anyway:")
        for finding in findings:
            say(f"  {finding}")
    taken = settings.taken_ports()
    if taken:
        raise StartError("\n".join(taken))
    say("Starting the emulator, the app and the gateway…")
    emulator = Child("emulator", [sys.executable, "-m", "emulator", "run",
                                  "--workspace", str(settings.workspace),
                                  "--https-port", str(settings.https_port),
                                  "--http-port", str(settings.http_port),
                                  "--gateway-origin", f"http://localhost:{settings.gateway_port}",
                                  "--app-url", f"http://127.0.0.1:{settings.app_port}"], _environ({}))
    children.append(emulator)
    ready = _emulator_ready(emulator, stop)
    if ready is None:
        return 0
    vcap = Path(ready["vcap_services_file"]).read_text(encoding="utf-8")
    # Loopback only, like the emulator; no control socket (it would take over another
    # gunicorn's ~/.gunicorn/gunicorn.ctl).
    app = Child("app", [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py",
                        "--bind", f"127.0.0.1:{settings.app_port}", "--no-control-socket",
                        "app:create_app()"],
                _environ({"PORT": str(settings.app_port), "VCAP_SERVICES": vcap,
                          "REQUESTS_CA_BUNDLE": ready["ca_file"], "LOG_FORMAT": "text",
                          "WEB_CONCURRENCY": "1"}))
    children.append(app)
    if not _app_ready(app, settings.app_port, stop):
        return 0
    gateway = Child("gateway", [sys.executable, "-m", "gateway"],
                    _environ({"PORT": str(settings.gateway_port), "XS_BIND_ADDRESS": "127.0.0.1",
                              "VCAP_SERVICES": vcap, "REQUESTS_CA_BUNDLE": ready["ca_file"],
                              "destinations": Path(ready["destinations_file"]).read_text(encoding="utf-8")}))
    children.append(gateway)
    if not _app_ready(gateway, settings.gateway_port, stop):
        return 0
    say(banner(settings, Path(ready["ca_file"]), os.environ))
    app.passing_on(True)
    emulator.passing_on(True)
    gateway.passing_on(True)
    while not stop.wait(0.5):
        for child in children:
            if child.exited():
                say(f"The {child.name} stopped on its own (exit status {child.proc.returncode}).")
                return 1
    return 0


def _environ(extra: dict[str, str]) -> dict[str, str]:
    """Our environment without bindings, plus ``extra``; loopback never through a proxy."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VCAP_")}
    for name in ("NO_PROXY", "no_proxy"):
        env[name] = ",".join(filter(None, [env.get(name, ""), "localhost,127.0.0.1"]))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def _emulator_ready(emulator: Child, stop: threading.Event) -> dict[str, Any] | None:
    """The emulator's readiness line; None when asked to stop first."""
    deadline = time.monotonic() + START_DEADLINE_S
    while not stop.is_set():
        try:
            line = emulator.lines.get(timeout=POLL_S)
        except queue.Empty:
            if emulator.exited():
                raise StartError(f"the emulator stopped (exit status {emulator.proc.returncode}):\n"
                                 f"{emulator.output()}") from None
            if time.monotonic() > deadline:
                raise StartError(f"the emulator was not ready within {START_DEADLINE_S:.0f} s:\n"
                                 f"{emulator.output()}") from None
            continue
        with contextlib.suppress(ValueError):
            ready = json.loads(line)
            if isinstance(ready, dict) and ready.get("ready"):
                return ready
    return None


def _app_ready(app: Child, port: int, stop: threading.Event) -> bool:
    """Wait for the app's (or the gateway's) /health; False when asked to stop first."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + START_DEADLINE_S
    while not stop.is_set():
        if app.exited():
            raise StartError(f"the {app.name} stopped (exit status {app.proc.returncode}):\n{app.output()}")
        try:
            with opener.open(f"http://127.0.0.1:{port}/health", timeout=1) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise StartError(f"the {app.name} did not answer /health within {START_DEADLINE_S:.0f} s:\n"
                             f"{app.output()}")
        stop.wait(POLL_S)
    return False


def banner(settings: Settings, ca_file: Path, environ: Mapping[str, str]) -> str:
    """What runs where, the users and what they can do, how to call the app."""
    urls = Urls(https_port=settings.https_port, http_port=settings.http_port)
    cfg = load_config(ROOT, USERS_FILE, urls)
    iflow_path = environ.get("IFLOW_PATH", DEFAULT_IFLOW_PATH)
    app_url = f"http://localhost:{settings.app_port}"
    gateway_url = f"http://localhost:{settings.gateway_port}"
    users = _users(cfg, iflow_path, environ)
    caller = next((name for name, lacking in users if not lacking), users[0][0] if users else "jane")
    width = max((len(f"{u.name} / {u.password}") for u in cfg.users.values()), default=0)
    lines = [
        "",
        "frontapp runs locally:",
        f"  gateway    {gateway_url:<28} frontrouter: login, sessions, routes of gateway/xs-app.json",
        f"  app        {app_url:<28} frontapp under gunicorn (its log follows, prefixed \"app |\")",
        f"  emulator   {urls.xsuaa:<28} XSUAA, CPI (iFlow {iflow_path}), IAS (issuer {urls.ias})",
        f"  workspace  {settings.workspace}  (CA: ca.pem, bindings: vcap-services.json)",
        "Users (name / password):",
    ]
    for name, lacking in users:
        user = cfg.users[name]
        what = (f"lacks {', '.join(lacking)}: the app answers 403 and says why" if lacking
                else "the iFlow answers")
        lines.append(f"  {f'{user.name} / {user.password}':<{width}}   {what}")
    token = (f"curl -s --cacert {shlex.quote(str(ca_file))} {urls.xsuaa}/_emu/token "
             f"-d user={shlex.quote(caller)} -d kind=ias")
    lines += [
        f"Call the app as {caller} (the page as JSON, then as HTML):",
        f"  TOKEN=$({token})",
        f"  curl -H \"Authorization: Bearer $TOKEN\" -H 'Accept: application/json' {app_url}/homepage",
        f"  curl -H \"Authorization: Bearer $TOKEN\" {app_url}/homepage",
        "Open in a browser (log in as one of the users):",
        f"  {gateway_url}/homepage          IAS login",
        f"  {gateway_url}/xsuaa/homepage    XSUAA login (trust {ca_file} or accept the warning)",
        f"  {gateway_url}/logout            ends the session and the IdP's",
        READY_LINE,
    ]
    return "\n".join(lines)


def _users(cfg: EmulatorConfig, iflow_path: str, environ: Mapping[str, str]) -> list[tuple[str, list[str]]]:
    """Each user and the CPI roles they lack: the iFlow's role and the role the app checks."""
    iflow = next((s for p, s in cfg.iflows.items() if p.lower() == iflow_path.lower()), None)
    app_role = environ["CPI_ROLE"] or None if "CPI_ROLE" in environ else _first_cpi_role()
    needed = sorted({r for r in (iflow.role if iflow else None, app_role) if r})
    result = []
    for user in cfg.users.values():
        scopes = cfg.user_scopes(user)
        result.append((user.name, [r for r in needed if f"{cfg.cpi_broker}.{r}" not in scopes]))
    return result


def _first_cpi_role() -> str | None:
    with contextlib.suppress(OSError, ValueError, AttributeError, IndexError, TypeError):
        role = json.loads((ROOT / "config-cpi.json").read_text()).get("roles")[0]
        return role if isinstance(role, str) else None
    return None


if __name__ == "__main__":
    sys.exit(main())
