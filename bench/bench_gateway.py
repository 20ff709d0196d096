"""The gateway against SAP's approuter, same run, same backend, same identity provider.

Both gateways stand in front of one tiny backend (bench/tiny_backend.py, its own process)
with the same ``xs-app.json`` (one route ``^/(.*)$`` to the destination ``frontapp``,
``authenticationType: xsuaa``, ``csrfProtection: false``; the destination has
``forwardAuthToken: true``) and the same XSUAA binding: the emulator's
(``python -m emulator run``). Each gateway is logged in once as ``jane`` through the emulator's
login page (approuter with state + PKCE, as a browser); the load then carries that session
cookie, and the backend counts the requests that arrived with ``Authorization: Bearer``.

approuter is installed with npm into a throwaway folder (never into the repository): the newest
release that runs on this machine's Node (23.x with ``overrides: {"@sap/logging": "9.2.2"}``,
else 20.10.0). It runs with ``DISABLE_CONNECTION_REUSE=false`` (keep-alive to the backend, as
on Cloud Foundry; approuter turns it off in local runs only); our gateway with
``LOG_FORMAT=json`` (as on Cloud Foundry).

Load: ``wrk`` (Debian package, its own process), one thread, c = 1 / 10 / 50, DURATION seconds
per point, the two contenders alternating (the order flips at every point), ROUNDS rounds.
CPU per request = utime + stime of the gateway's process (/proc/<pid>/stat) over the run
divided by the requests wrk completed. RSS from /proc/<pid>/status. Then 1,000 simultaneous
requests to ``/slow`` (the backend answers after 2 s) from a separate aiohttp client: to the
backend directly (the client's own floor), through our gateway, through approuter, and
through a second approuter of the same install with ``BACKEND_MAX_SOCKETS=1000`` (its default
of 100 queues such a wave; that instance idles during the load runs).

    .venv/bin/python bench/bench_gateway.py            # full: 3 rounds x 10 s, about 4.5 minutes
    .venv/bin/python bench/bench_gateway.py --quick    # 1 round x 3 s, about 1.5 minutes
    .venv/bin/python bench/bench_gateway.py --json out.json --keep

The table goes to stdout, progress to stderr; the exit code is always 0. Needs ``wrk``
(``apt-get install -y wrk``), ``node`` and ``npm`` with access to the npm registry.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import resource
import select
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from yarl import URL

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from gateway.sessions import COOKIE_NAME  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
USER = "jane"
BODY = b"hello from the tiny backend\n"  # what tiny_backend.py answers
#: approuter answers its login page (state + PKCE) only to browsers: "Mozilla" in the User-Agent
BROWSER_UA = "Mozilla/5.0 (X11; Linux x86_64) bench_gateway/1"
#: newest first: (npm version spec, package.json overrides)
APPROUTER_CANDIDATES: tuple[tuple[str, dict[str, str] | None], ...] = (
    ("23", {"@sap/logging": "9.2.2"}),  # 23.0.0 pins an unpublished @sap/logging 9.2.1
    ("20.10.0", None),
)
def xs_app(auth: str) -> dict[str, Any]:
    """The one xs-app.json both gateways read. ``auth`` "none" only for the fallback (no login possible)."""
    return {"routes": [{"source": "^/(.*)$", "destination": "frontapp", "authenticationType": auth,
                        "csrfProtection": False}]}


class LoginFailed(Exception):
    """A gateway could not log in against the emulator; the run falls back to authenticationType none."""
LEVELS = (1, 10, 50)
SLOW_WAVE = 1000
START_DEADLINE_S = 60.0
#: an error line: text and JSON formats, approuter's "#ERROR#", aiohttp's unformatted server errors
ERROR_LINE = re.compile(r'\bERROR\b|"level": ?"error"|#ERROR#|^Error handling request')
#: what must not reach the gateways from this environment: bindings, their settings, other CAs
_STRIPPED = ("VCAP_", "CF_", "PORT", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_",
             "NODE_EXTRA_CA_CERTS", "NODE_OPTIONS", "NODE_ENV", "XS_", "destinations", "SESSION_",
             "JWT_REFRESH", "TRUSTED_PROXY_HOPS", "DISABLE_CONNECTION_REUSE", "BACKEND_MAX_SOCKETS", "LOG_")
_PROXIES = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}

WRK_LUA = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,' ..
    '"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
"""


def say(text: str = "") -> None:
    print(text, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- processes


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)
        if self.popen.stdout is not None:
            self.popen.stdout.close()


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_STRIPPED) and k.lower() not in _PROXIES}
    env.update(NO_PROXY="localhost,127.0.0.1", PYTHONUNBUFFERED="1", **extra)
    return env


def start(name: str, argv: list[str], *, cwd: Path, env: dict[str, str], logs: Path,
          stdout_pipe: bool = False) -> Proc:
    log_path = logs / f"{name}.log"
    with log_path.open("wb") as log:
        popen = subprocess.Popen(  # noqa: S603 - fixed argv: this interpreter, node, our files
            argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if stdout_pipe else log, stderr=log, start_new_session=True)
    return Proc(name, popen, log_path)


def ready_line(proc: Proc, deadline_s: float = START_DEADLINE_S) -> dict[str, Any]:
    """The first JSON line the process prints on stdout."""
    assert proc.popen.stdout is not None
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        readable, _, _ = select.select([proc.popen.stdout], [], [], 0.2)
        if readable:
            line = proc.popen.stdout.readline()
            if line:
                return json.loads(line)
        if proc.popen.poll() is not None:
            break
    raise SystemExit(f"{proc.name} did not get ready:\n{proc.log_tail()}")


def wait_http(proc: Proc, url: str, deadline_s: float = START_DEADLINE_S) -> float:
    """Seconds until ``url`` answers anything over HTTP."""
    started = time.monotonic()
    while time.monotonic() - started < deadline_s:
        if proc.popen.poll() is not None:
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.log_tail()}")
        try:
            with socket.create_connection((URL(url).host, URL(url).port), timeout=1) as sock:
                sock.sendall(f"GET {URL(url).path} HTTP/1.1\r\nHost: {URL(url).raw_authority}\r\n"
                             "Connection: close\r\n\r\n".encode())
                if sock.recv(16).startswith(b"HTTP/1."):
                    return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{proc.name} did not answer {url} within {deadline_s} s:\n{proc.log_tail()}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15)


def memory_mib(pid: int) -> dict[str, float]:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM", "Threads"):
            number = int(rest.split()[0])
            values[key] = number if key == "Threads" else round(number / 1024, 1)
    return values


def listen_overflows() -> int:
    """The kernel's count of connections dropped because a listen queue was full (TcpExt ListenOverflows)."""
    lines = [line.split() for line in Path("/proc/net/netstat").read_text().splitlines()
             if line.startswith("TcpExt:")]
    return int(dict(zip(lines[0], lines[1], strict=True)).get("ListenOverflows", 0)) if len(lines) == 2 else 0


def children(pid: int) -> list[int]:
    try:
        found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [int(p) for p in found]


# ---------------------------------------------------------------- approuter install


def install_approuter(folder: Path, spec: str, overrides: dict[str, str] | None) -> tuple[str | None, str]:
    """npm install @sap/approuter@spec into folder; (installed version or None, npm's output tail)."""
    folder.mkdir(parents=True)
    package: dict[str, Any] = {"name": "approuter-bench", "version": "0.0.0", "private": True,
                               "description": "throwaway, made by bench/bench_gateway.py"}
    if overrides:
        package["overrides"] = overrides
    (folder / "package.json").write_text(json.dumps(package, indent=1))
    npm = shutil.which("npm")
    if npm is None:
        return None, "npm is not on PATH"
    done = subprocess.run(  # noqa: S603 - fixed argv
        [npm, "install", "--no-audit", "--no-fund", f"@sap/approuter@{spec}"], cwd=folder,
        capture_output=True, text=True, timeout=600, check=False)
    output = (done.stdout + done.stderr).strip()
    manifest = folder / "node_modules" / "@sap" / "approuter" / "package.json"
    if done.returncode != 0 or not manifest.exists():
        return None, output[-2000:]
    return json.loads(manifest.read_text())["version"], output[-2000:]


# ---------------------------------------------------------------- logins


def _browser(origin: str) -> aiohttp.ClientSession:
    # like a browser: Secure cookies go to http://localhost too; the emulator's CA is trusted by the caller
    jar = aiohttp.CookieJar(unsafe=True, treat_as_secure_origin=[URL(origin)])
    return aiohttp.ClientSession(cookie_jar=jar, headers={"User-Agent": BROWSER_UA})


async def _emulator_login(http: aiohttp.ClientSession, authorize: str, ssl_ctx: Any) -> str:
    """On the emulator's login page, pick USER; the callback URL it redirects to."""
    async with http.get(authorize, allow_redirects=False, ssl=ssl_ctx) as page:
        text = await page.text()
        if page.status != 200:
            raise RuntimeError(f"emulator authorize answered {page.status}: {text[:300]}")
    found = re.search(r'name="request" value="([^"]+)"', text)
    if found is None:
        raise RuntimeError(f"no login form on the emulator's page: {text[:300]}")
    origin = authorize.split("/oauth", 1)[0]
    action = origin + ("/oauth2/login" if "/oauth2/" in authorize else "/login.do")
    async with http.post(action, data={"request": found.group(1), "user": USER}, allow_redirects=False,
                         ssl=ssl_ctx) as done:
        if done.status != 302:
            raise RuntimeError(f"emulator login answered {done.status}: {(await done.text())[:300]}")
        return done.headers["Location"]


def _cookie_header(http: aiohttp.ClientSession, origin: str, name: str) -> str:
    morsel = http.cookie_jar.filter_cookies(URL(origin)).get(name)
    if morsel is None:
        raise RuntimeError(f"no {name} cookie after the login")
    return f"{name}={morsel.value}"


async def login_gateway(origin: str, ssl_ctx: Any) -> str:
    """Our gateway: 302 to the IdP, login page, callback, the landing page. The session cookie header."""
    async with _browser(origin) as http:
        async with http.get(origin + "/homepage", allow_redirects=False) as first:
            if first.status != 302:
                raise RuntimeError(f"gateway: expected the login redirect, got {first.status}")
            authorize = first.headers["Location"]
        callback = await _emulator_login(http, authorize, ssl_ctx)
        async with http.get(callback, allow_redirects=False) as back:
            if back.status != 200 or 'content="0;url=/homepage"' not in await back.text():
                raise RuntimeError(f"gateway callback answered {back.status}: {(await back.text())[:300]}")
        return _cookie_header(http, origin, COOKIE_NAME)


async def login_approuter(origin: str, ssl_ctx: Any) -> str:
    """approuter: its 200 login page sets three cookies by script (approuter.md §3, caveats): set
    them as the script would, follow its ``location=`` to the IdP (state + PKCE, since the
    User-Agent says Mozilla), log in, and call /login/callback with the Secure pre-login cookie."""
    async with _browser(origin) as http:
        async with http.get(origin + "/homepage", allow_redirects=False) as first:
            page = await first.text()
            if first.status != 200 or "location=" not in page:
                raise RuntimeError(f"approuter: expected its login page, got {first.status}: {page[:300]}")
        signature = re.search(r'document\.cookie="signature=([^;"]*)', page)
        location = re.search(r'location="([^"]+)"', page)
        if signature is None or location is None:
            raise RuntimeError(f"approuter's login page changed shape: {page[:500]}")
        # What its script computes for http://localhost:<port>/homepage. The script also sets an empty
        # fragmentAfterLogin; aiohttp would send that as "" (quoted), which approuter appends to its
        # redirect, and approuter treats a missing one as empty: it is left out.
        http.cookie_jar.update_cookies({"locationAfterLogin": "%2Fhomepage", "signature": signature.group(1)},
                                       response_url=URL(origin))
        authorize = location.group(1)
        if "code_challenge=" not in authorize:
            raise RuntimeError("approuter sent no PKCE challenge; the emulator requires one")
        callback = await _emulator_login(http, authorize, ssl_ctx)
        async with http.get(callback, allow_redirects=False) as back:
            if back.status != 200 or 'content="0;url=/homepage"' not in await back.text():
                sent = back.request_info.headers.get("Cookie")
                raise RuntimeError(f"approuter callback answered {back.status} {back.reason}, Location "
                                   f"{back.headers.get('Location')}, cookies sent {sent}: "
                                   f"{(await back.text())[:300]}")
        return _cookie_header(http, origin, "JSESSIONID")


async def backend_stats(backend: str, reset: bool = False) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, \
            http.get(backend + "/_stats" + ("?reset=1" if reset else "")) as answer:
        return await answer.json()


async def check_session(origin: str, cookie: str, backend: str) -> dict[str, Any]:
    """One GET with only the session cookie (none: no cookie): 200, the backend's body, and, with a
    session, a Bearer for USER at the backend."""
    await backend_stats(backend, reset=True)
    async with aiohttp.ClientSession() as http, \
            http.get(origin + "/homepage", headers={"Cookie": cookie} if cookie else {},
                     allow_redirects=False) as answer:
        body = await answer.read()
    stats = await backend_stats(backend, reset=True)
    claims = stats["last_token_claims"]
    email = next(u["email"] for u in json.loads((ROOT / "emulator" / "users.json").read_text())["users"]
                 if u["name"] == USER)
    ok = answer.status == 200 and body == BODY and (
        not cookie or (stats["bearer"].get("homepage") == 1 and claims.get("user_name") == email))
    if not ok:
        raise RuntimeError(f"{origin}: status {answer.status}, body {body[:80]!r}, backend {stats}")
    return {"user_name": claims.get("user_name"), "scope": claims.get("scope"), "iss": claims.get("iss"),
            "response_headers": sorted(answer.headers)}


# ---------------------------------------------------------------- load


@dataclass
class Contender:
    key: str  # "gateway" | "approuter"
    label: str
    proc: Proc
    origin: str
    cookie: str = ""
    rss_idle: dict[str, float] = field(default_factory=dict)


def run_wrk(lua: Path, url: str, cookie: str, connections: int, seconds: float) -> dict[str, Any]:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "10s", "-s", str(lua),
            "-H", f"Cookie: {cookie}", url]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)  # noqa: S603
    for line in done.stdout.splitlines():
        if line.startswith("WRKJSON "):
            return json.loads(line[len("WRKJSON "):])
    raise RuntimeError(f"wrk printed no result (rc {done.returncode}): {done.stdout[-500:]} "
                       f"{done.stderr[-500:]}")


def load_point(c: Contender, lua: Path, backend: str, connections: int, seconds: float) -> dict[str, Any]:
    asyncio.run(backend_stats(backend, reset=True))
    cpu0 = cpu_seconds(c.proc.pid)
    result = run_wrk(lua, c.origin + "/homepage", c.cookie, connections, seconds)
    cpu1 = cpu_seconds(c.proc.pid)
    stats = asyncio.run(backend_stats(backend, reset=True))
    requests = result["requests"]
    errors = sum(result[k] for k in ("connect", "read", "write", "status", "timeout"))
    return {"contender": c.key, "c": connections, "requests": requests,
            "rps": requests / (result["duration_us"] / 1e6), "p50_ms": result["p50_us"] / 1000,
            "p90_ms": result["p90_us"] / 1000, "p99_ms": result["p99_us"] / 1000,
            "max_ms": result["max_us"] / 1000, "errors": errors, "wrk": result, "cpu_s": cpu1 - cpu0,
            "cpu_ms_per_req": (cpu1 - cpu0) * 1000 / requests if requests else float("nan"),
            "backend_requests": stats["requests"].get("homepage", 0),
            "backend_bearer": stats["bearer"].get("homepage", 0), "backend_connections": stats["connections"]}


async def slow_wave(c: Contender, backend: str, n: int, timeout_s: float) -> dict[str, Any]:
    """n simultaneous GET /slow with the session cookie, each on its own connection."""
    await backend_stats(backend, reset=True)
    rss_peak = 0.0
    sampling = True

    async def sample() -> None:
        nonlocal rss_peak
        while sampling:
            rss_peak = max(rss_peak, memory_mib(c.proc.pid)["VmRSS"])
            await asyncio.sleep(0.1)

    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    outcomes: list[tuple[bool, float, str]] = []
    headers = {"Cookie": c.cookie} if c.cookie else {}
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        gate = asyncio.Event()

        async def one() -> tuple[bool, float, str]:
            await gate.wait()
            started = time.perf_counter()
            try:
                async with http.get(c.origin + "/slow", headers=headers, allow_redirects=False) as answer:
                    body = await answer.read()
                    ok = answer.status == 200 and body == BODY
                    return ok, time.perf_counter() - started, "" if ok else f"HTTP {answer.status}"
            except (aiohttp.ClientError, OSError) as exc:
                return False, time.perf_counter() - started, type(exc).__name__

        tasks = [asyncio.create_task(one()) for _ in range(n)]
        sampler = asyncio.create_task(sample())
        await asyncio.sleep(0.2)  # every task is waiting at the gate
        cpu0, overflows0 = cpu_seconds(c.proc.pid), listen_overflows()
        started = time.perf_counter()
        gate.set()
        outcomes = await asyncio.gather(*tasks)
        wall = time.perf_counter() - started
        cpu1, overflows1 = cpu_seconds(c.proc.pid), listen_overflows()
        sampling = False
        await sampler
    stats = await backend_stats(backend, reset=True)
    latencies = sorted(t for _, t, _ in outcomes)
    errors: dict[str, int] = {}
    for ok, _, why in outcomes:
        if not ok:
            errors[why] = errors.get(why, 0) + 1
    ok_count = sum(1 for ok, _, _ in outcomes if ok)
    return {"contender": c.key, "sent": n, "ok": ok_count, "errors": n - ok_count, "error_kinds": errors,
            "wall_s": wall, "p50_s": percentile(latencies, 50), "p99_s": percentile(latencies, 99),
            "max_s": latencies[-1], "cpu_ms_per_req": (cpu1 - cpu0) * 1000 / n, "rss_peak_mib": rss_peak,
            "backend_requests": stats["requests"].get("slow", 0),
            "backend_bearer": stats["bearer"].get("slow", 0),
            "backend_max_in_flight": stats["max_in_flight"], "backend_connections": stats["connections"],
            "listen_overflows": overflows1 - overflows0}


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


# ---------------------------------------------------------------- report


def machine_facts() -> dict[str, Any]:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "?")
    node = subprocess.run(["node", "--version"], capture_output=True, text=True, check=False).stdout.strip()  # noqa: S607
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)  # noqa: S607
    return {"nproc": os.cpu_count(), "cpu_model": model, "kernel": platform.release(),
            "python": platform.python_version(), "aiohttp": aiohttp.__version__, "node": node,
            "wrk": (wrk.stdout + wrk.stderr).splitlines()[0] if (wrk.stdout + wrk.stderr) else "?",
            "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
            "mem_total_mib": int(Path("/proc/meminfo").read_text().split()[1]) // 1024}


def summarize(points: list[dict[str, Any]], key: str, c: int) -> dict[str, Any]:
    mine = [p for p in points if p["contender"] == key and p["c"] == c]
    requests = sum(p["requests"] for p in mine)
    return {"rps": statistics.median(p["rps"] for p in mine),
            "rps_rounds": [round(p["rps"]) for p in mine],
            "p50_ms": statistics.median(p["p50_ms"] for p in mine),
            "p99_ms": statistics.median(p["p99_ms"] for p in mine),
            "p99_rounds": [round(p["p99_ms"], 2) for p in mine],
            "cpu_ms_per_req": sum(p["cpu_s"] for p in mine) * 1000 / requests if requests else float("nan"),
            "errors": sum(p["errors"] for p in mine), "requests": requests,
            "bearer_missing": sum(max(0, p["backend_requests"] - p["backend_bearer"]) for p in mine),
            "backend_connections": [p["backend_connections"] for p in mine]}


def report(result: dict[str, Any]) -> list[str]:
    out: list[str] = []
    m = result["machine"]
    names = {k: v["label"] for k, v in result["contenders"].items()}
    out.append(f"{result['date']}: approuter {result['approuter_version']} on Node {m['node']}; "
               f"our gateway on Python {m['python']} (aiohttp {m['aiohttp']}); "
               f"{m['nproc']} CPUs {m['cpu_model']}, {m['kernel']}; "
               f"{result['rounds']} round(s) x {result['duration_s']:g} s per point, wrk -t1")
    if result.get("login_failure"):
        out.append(f"LOGIN FAILED, so both ran with authenticationType none: {result['login_failure']}")
    out.append(f"route authenticationType: {result['auth']}" + (
        f", logged in as {USER}, Bearer forwarded" if result["auth"] == "xsuaa" else " (no login, no token)"))
    out.append("")
    out.append("| contender | c | req/s | p50 | p99 | CPU ms/req | errors | without Bearer | backend conns | "
               "req/s per round |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for c in result["levels"]:
        for key in ("gateway", "approuter"):
            s = result["summary"][key][str(c)]
            rounds = " / ".join(f"{v:,}" for v in s["rps_rounds"])
            conns = "/".join(map(str, s["backend_connections"]))
            missing = s["bearer_missing"] if result["auth"] == "xsuaa" else "-"
            out.append(f"| {names[key]} | {c} | {s['rps']:,.0f} | {s['p50_ms']:.2f} ms "
                       f"| {s['p99_ms']:.2f} ms | {s['cpu_ms_per_req']:.3f} | {s['errors']} "
                       f"| {missing} | {conns} | {rounds} |")
    out.append("")
    out.append("| gateway / approuter | c=1 | c=10 | c=50 | all levels |")
    out.append("|---|---:|---:|---:|---:|")
    ratios = result["ratios"]
    for label, key in (("req/s", "rps"), ("p50", "p50_ms"), ("p99", "p99_ms"), ("CPU per request", "cpu")):
        cells = " | ".join(f"{ratios[key][str(c)]:.2f}x" for c in result["levels"])
        overall = f"{ratios['cpu']['all']:.2f}x" if key == "cpu" else ""
        out.append(f"| {label} | {cells} | {overall} |")
    out.append("")
    out.append("| contender | RSS before the load | RSS after the load | peak RSS (VmHWM) | threads |")
    out.append("|---|---:|---:|---:|---:|")
    for key in ("gateway", "approuter"):
        mem = result["memory"][key]
        out.append(f"| {names[key]} | {mem['idle']['VmRSS']} MiB | {mem['after_load']['VmRSS']} MiB | "
                   f"{mem['after_load']['VmHWM']} MiB | {mem['after_load']['Threads']} |")
    out.append("")
    out.append(f"{SLOW_WAVE:,} simultaneous GET /slow (the backend answers after {result['slow_s']:g} s), "
               "each on its own connection:")
    out.append("")
    out.append("| path | ok | errors | wall | p50 | p99 | CPU ms/req | peak RSS | "
               "max in flight at the backend | backend conns | listen queue overflows |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for key, w in result["slow"].items():
        kinds = ", ".join(f"{k}: {v}" for k, v in w["error_kinds"].items())
        errors = f"{w['errors']} ({kinds})" if kinds else str(w["errors"])
        out.append(f"| {result['slow_labels'][key]} | {w['ok']} | {errors} | {w['wall_s']:.2f} s "
                   f"| {w['p50_s']:.2f} s | {w['p99_s']:.2f} s | {w['cpu_ms_per_req']:.3f} | "
                   f"{w['rss_peak_mib']} MiB | {w['backend_max_in_flight']} | {w['backend_connections']} | "
                   f"{w['listen_overflows']} |")
    out.append("")
    for name, logged in result["logs"].items():
        out.append(f"log of {name}: {logged['lines']:,} lines ({logged['bytes']:,} bytes), "
                   f"{logged['error_lines']} error lines, {logged['tracebacks']} tracebacks")
    out.append("")
    out.append("Acceptance:")
    out.append("")
    for verdict in result["verdicts"]:
        out.append(f"* [{'PASS' if verdict['pass'] else 'FAIL'}] {verdict['target']}: {verdict['measured']}")
    return out


def verdicts(result: dict[str, Any]) -> list[dict[str, Any]]:
    r = result["ratios"]
    cpu_levels = ", ".join(f"c={c} {r['cpu'][str(c)]:.2f}x" for c in result["levels"])
    worst_cpu = max(r["cpu"][str(c)] for c in result["levels"])
    g50 = result["summary"]["gateway"]["50"]
    a50 = result["summary"]["approuter"]["50"]
    wave = result["slow"]["gateway"]
    with_login = result["auth"] == "xsuaa"
    clean = all(result["summary"]["gateway"][str(c)]["errors"] == 0
                and (not with_login or result["summary"]["gateway"][str(c)]["bearer_missing"] == 0)
                for c in result["levels"])
    return [
        {"target": "CPU per proxied request <= 0.5x approuter's (every level)", "pass": worst_cpu <= 0.5,
         "measured": f"{cpu_levels}; all levels together {r['cpu']['all']:.2f}x"},
        {"target": "p99 at c=50 no worse than approuter's", "pass": g50["p99_ms"] <= a50["p99_ms"],
         "measured": f"{g50['p99_ms']:.2f} ms vs {a50['p99_ms']:.2f} ms ({r['p99_ms']['50']:.2f}x)"},
        {"target": f"{SLOW_WAVE:,} concurrent slow requests with no error", "pass": wave["errors"] == 0
         and (not with_login or wave["backend_bearer"] == SLOW_WAVE),
         "measured": f"{wave['ok']} ok, {wave['errors']} errors, {wave['backend_bearer']} with Bearer at the "
                     f"backend, wall {wave['wall_s']:.2f} s"},
        {"target": "no errors under load" + (" and a Bearer on every request" if with_login else "")
         + " (gateway)", "pass": clean,
         "measured": "yes" if clean else "no: see the table"},
    ]


# ---------------------------------------------------------------- main


@contextlib.contextmanager
def workspace(keep: bool) -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    try:
        yield folder
    finally:
        if keep:
            say(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 round x 3 s per point")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--duration", type=float, help="seconds per load point")
    parser.add_argument("--slow", type=float, default=2.0, help="seconds the backend's /slow takes")
    parser.add_argument("--json", type=Path, help="also write every measurement here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, approuter)")
    parser.add_argument("--auth", choices=("xsuaa", "none"), default="xsuaa",
                        help="the route's authenticationType; xsuaa falls back to none when a login fails")
    args = parser.parse_args()
    rounds = args.rounds or (1 if args.quick else 3)
    duration = args.duration or (3.0 if args.quick else 10.0)
    if shutil.which("wrk") is None:
        say("wrk is missing: apt-get install -y wrk")
        return 0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))  # the children inherit it
    started = time.monotonic()
    result: dict[str, Any] | None = None
    login_failure = None
    for auth in (args.auth, "none") if args.auth == "xsuaa" else (args.auth,):
        procs: list[Proc] = []
        with workspace(args.keep) as tmp:
            logs = tmp / "logs"
            logs.mkdir()
            try:
                result = run(args, tmp, logs, procs, rounds, duration, auth)
            except LoginFailed as exc:
                login_failure = str(exc)
                say(f"LOGIN FAILED: {exc}\nfalling back to authenticationType none for both gateways")
                continue
            except Exception as exc:  # noqa: BLE001 - a measurement: say what broke, exit 0
                say(f"the benchmark broke: {type(exc).__name__}: {exc}")
                return 0
            finally:
                for proc in reversed(procs):
                    proc.stop()
        break
    if result is None:
        return 0
    result["login_failure"] = login_failure
    result["total_s"] = round(time.monotonic() - started, 1)
    lines = report(result)
    print("\n".join(lines))
    say(f"total {result['total_s']} s")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


def run(args: argparse.Namespace, tmp: Path, logs: Path, procs: list[Proc], rounds: int,
        duration: float, auth: str) -> dict[str, Any]:
    result: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "machine": machine_facts(), "rounds": rounds,
                              "duration_s": duration, "levels": list(LEVELS), "slow_s": args.slow,
                              "approuter_attempts": [], "auth": auth, "xs_app": xs_app(auth)}
    gw_port, ar_port, ar1000_port, backend_port = free_port(), free_port(), free_port(), free_port()
    gw_origin, ar_origin = f"http://localhost:{gw_port}", f"http://localhost:{ar_port}"
    ar1000_origin = f"http://localhost:{ar1000_port}"
    backend = f"http://127.0.0.1:{backend_port}"

    say("starting the backend and the emulator")
    backend_proc = start("backend", [sys.executable, str(BENCH / "tiny_backend.py"),
                                     "--port", str(backend_port), "--slow", str(args.slow)],
                         cwd=ROOT, env=clean_env(), logs=logs, stdout_pipe=True)
    procs.append(backend_proc)
    origins = [arg for origin in (gw_origin, ar_origin, ar1000_origin)
               for arg in ("--gateway-origin", origin)]
    emulator = start("emulator", [sys.executable, "-m", "emulator", "run", "--workspace",
                                  str(tmp / "emulator"), "--https-port", "0", "--http-port", "0", *origins],
                     cwd=ROOT, env=clean_env(), logs=logs, stdout_pipe=True)
    procs.append(emulator)
    ready_line(backend_proc)
    emu = ready_line(emulator)
    ca_file = emu["ca_file"]
    vcap_all = json.loads(Path(emu["vcap_services_file"]).read_text())
    vcap = json.dumps({"xsuaa": vcap_all["xsuaa"]})  # both gateways: only the XSUAA binding
    destinations = json.dumps([{"name": "frontapp", "url": backend, "forwardAuthToken": True}])
    ar_root = tmp / "approuter"
    ar_root.mkdir()
    xs_app_file = tmp / "xs-app.json"
    xs_app_file.write_text(json.dumps(xs_app(auth), indent=1))

    say("starting our gateway")
    gw = start("gateway", [sys.executable, "-m", "gateway"], cwd=ROOT, logs=logs, env=clean_env(
        VCAP_SERVICES=vcap, destinations=destinations, XS_APP_FILE=str(xs_app_file), PORT=str(gw_port),
        XS_BIND_ADDRESS="127.0.0.1", REQUESTS_CA_BUNDLE=ca_file, LOG_FORMAT="json"))  # as on Cloud Foundry
    procs.append(gw)
    result["gateway_start_s"] = round(wait_http(gw, gw_origin + "/health"), 2)

    def start_approuter(folder: Path, name: str, port: int, **extra: str) -> Proc:
        shutil.copyfile(xs_app_file, folder / "xs-app.json")  # approuter reads ./xs-app.json: the same file
        proc = start(name, ["node", str(folder / "node_modules" / "@sap" / "approuter" / "approuter.js")],
                     cwd=folder, logs=logs, env=clean_env(
                         VCAP_SERVICES=vcap, destinations=destinations, PORT=str(port),
                         XS_BIND_ADDRESS="127.0.0.1", NODE_EXTRA_CA_CERTS=ca_file,
                         DISABLE_CONNECTION_REUSE="false", **extra))
        procs.append(proc)
        return proc

    approuter: Proc | None = None
    folder = ar_root
    for spec, overrides in APPROUTER_CANDIDATES:
        folder = ar_root / f"v{spec}"
        say(f"npm install @sap/approuter@{spec} into {folder}")
        t0 = time.monotonic()
        version, npm_out = install_approuter(folder, spec, overrides)
        attempt: dict[str, Any] = {
            "spec": spec, "overrides": overrides, "installed": version,
            "install_s": round(time.monotonic() - t0, 1),
            "npm_warnings": sorted({line.split()[2] for line in npm_out.splitlines()
                                    if line.startswith("npm warn ") and len(line.split()) > 2})}
        result["approuter_attempts"].append(attempt)
        if version is None:
            attempt["error"] = npm_out[-600:]
            say(f"  install failed: {npm_out[-300:]}")
            continue
        candidate = start_approuter(folder, f"approuter-{version}", ar_port)
        try:
            attempt["start_s"] = round(wait_http(candidate, ar_origin + "/homepage"), 2)
        except RuntimeError as exc:
            attempt["error"] = str(exc)[-600:]
            say(f"  approuter {version} did not start: {str(exc)[-300:]}")
            candidate.stop()
            continue
        approuter = candidate
        result["approuter_version"] = version
        break
    if approuter is None:
        raise SystemExit("no approuter version could be installed and started: "
                         + json.dumps(result["approuter_attempts"])[:2000])
    version = result["approuter_version"]
    # approuter's default BACKEND_MAX_SOCKETS=100 queues a 1,000-request wave; a second instance of the
    # same install with 1000 shows what it does when configured for it (slow wave only, idle otherwise)
    approuter1000 = start_approuter(folder, f"approuter-{version}-max1000", ar1000_port,
                                    BACKEND_MAX_SOCKETS="1000")
    wait_http(approuter1000, ar1000_origin + "/homepage")
    for proc in (gw, approuter):
        if children(proc.pid):
            say(f"note: {proc.name} has child processes {children(proc.pid)}: "
                "CPU is counted for the parent only")

    ours = Contender("gateway", "gateway (ours)", gw, gw_origin)
    theirs = Contender("approuter", f"approuter {version}", approuter, ar_origin)
    theirs1000 = Contender("approuter1000", f"approuter {version}, BACKEND_MAX_SOCKETS=1000", approuter1000,
                           ar1000_origin)
    contenders = (ours, theirs)

    ssl_ctx = ssl.create_default_context(cafile=ca_file)
    if auth == "xsuaa":
        say(f"logging in as {USER} through each")
        try:
            ours.cookie = asyncio.run(login_gateway(gw_origin, ssl_ctx))
            theirs.cookie = asyncio.run(login_approuter(ar_origin, ssl_ctx))
            theirs1000.cookie = asyncio.run(login_approuter(ar1000_origin, ssl_ctx))
        except (RuntimeError, aiohttp.ClientError, KeyError) as exc:
            raise LoginFailed(f"{type(exc).__name__}: {exc}") from exc
    else:
        for c in (ours, theirs, theirs1000):
            c.label += " [authenticationType none]"
    result["contenders"] = {c.key: {"label": c.label, "pid": c.proc.pid} for c in (ours, theirs, theirs1000)}
    result["session_check"] = {c.key: asyncio.run(check_session(c.origin, c.cookie, backend))
                               for c in (ours, theirs, theirs1000)}
    for c in contenders:
        c.rss_idle = memory_mib(c.proc.pid)

    lua = tmp / "report.lua"
    lua.write_text(WRK_LUA)
    say("warming up (2 s at c=10 each)")
    for c in contenders:
        warm = load_point(c, lua, backend, 10, 2)
        if warm["errors"] or warm["backend_bearer"] != warm["backend_requests"]:
            say(f"  warm-up through {c.key}: {warm['errors']} errors, "
                f"{warm['backend_requests'] - warm['backend_bearer']} without Bearer")

    points: list[dict[str, Any]] = []
    flip = 0
    for rnd in range(rounds):
        for c_level in LEVELS:
            order = contenders if flip % 2 == 0 else contenders[::-1]
            flip += 1
            for c in order:
                point = load_point(c, lua, backend, c_level, duration)
                point["round"] = rnd + 1
                points.append(point)
                say(f"  round {rnd + 1} c={c_level:<3} {c.key:<9} {point['rps']:8.0f} req/s  "
                    f"p50 {point['p50_ms']:7.2f} ms  p99 {point['p99_ms']:7.2f} ms  "
                    f"cpu {point['cpu_ms_per_req']:.3f} ms/req  errors {point['errors']}  "
                    f"no-bearer {point['backend_requests'] - point['backend_bearer']}")
                time.sleep(1)
    result["points"] = points
    result["memory"] = {c.key: {"idle": c.rss_idle, "after_load": memory_mib(c.proc.pid)} for c in contenders}
    summary = {c.key: {str(lv): summarize(points, c.key, lv) for lv in LEVELS} for c in contenders}
    result["summary"] = summary
    ratios: dict[str, dict[str, float]] = {"rps": {}, "p50_ms": {}, "p99_ms": {}, "cpu": {}}
    for lv in LEVELS:
        g, a = summary["gateway"][str(lv)], summary["approuter"][str(lv)]
        for key in ("rps", "p50_ms", "p99_ms"):
            ratios[key][str(lv)] = g[key] / a[key]
        ratios["cpu"][str(lv)] = g["cpu_ms_per_req"] / a["cpu_ms_per_req"]

    def overall(key: str) -> float:
        mine = [p for p in points if p["contender"] == key]
        return sum(p["cpu_s"] for p in mine) / sum(p["requests"] for p in mine)

    ratios["cpu"]["all"] = overall("gateway") / overall("approuter")
    result["ratios"] = ratios

    say(f"{SLOW_WAVE} simultaneous slow requests: to the backend directly (the client's floor), "
        "then through each")
    result["slow"] = {}
    direct = Contender("direct", "backend directly (no gateway)", backend_proc, backend)
    for c in (direct, ours, theirs, theirs1000):
        wave = asyncio.run(slow_wave(c, backend, SLOW_WAVE, timeout_s=120))
        result["slow"][c.key] = wave
        say(f"  {c.key}: {wave['ok']} ok, {wave['errors']} errors {wave['error_kinds']}, "
            f"wall {wave['wall_s']:.2f} s")
        time.sleep(2)
    result["slow_labels"] = {c.key: c.label for c in (direct, ours, theirs, theirs1000)}
    result["logs"] = {proc.name: log_summary(proc) for proc in (gw, approuter, approuter1000)}
    result["verdicts"] = verdicts(result)
    return result


def log_summary(proc: Proc) -> dict[str, Any]:
    """How much a gateway wrote to its log (stdout + stderr) during the run, and its errors."""
    text = proc.log_path.read_text(errors="replace")
    errors = [line for line in text.splitlines() if ERROR_LINE.search(line)]
    return {"bytes": len(text), "lines": text.count("\n"), "error_lines": len(errors),
            "tracebacks": text.count("Traceback (most recent call last)"), "first_errors": errors[:3]}


if __name__ == "__main__":
    sys.exit(main())
