"""Soak: minutes of steady, mixed browser traffic through the gateway and the app against the emulator.

Starts the whole ``./dev run`` scenario (``tests/integration/local_stack.py``: the emulator, the app
under gunicorn, the gateway, on free ports) and drives it open-loop: every 1/RATE seconds one user
action starts, whether or not earlier ones have finished. A pool of simulated browsers (USERS, each
its own cookie jar and connections) carries the actions, by weight:

* view (55%): ``GET /homepage`` (IAS session) or ``GET /xsuaa/homepage`` (XSUAA session) with
  ``Accept: application/json``; the app validates the token, exchanges it and calls the iFlow;
* iFlow send (25%): ``HEAD`` with ``x-csrf-token: fetch``, then ``POST`` of a JSON body with that
  token, as the page's script does;
* login (12%): a new browser (a fresh cookie jar) opens the page, follows the gateway to the
  emulator's login page (IAS 60%, XSUAA 40%), picks the user (jane 85%, john 15%: john lacks the
  CPI role, so the app answers him 403, which is expected) and comes back through the callback.
  It takes a logged-out browser when there is one; else a logged-in browser is abandoned with its
  session (closed without logging out);
* logout (8%): ``HEAD`` for the CSRF token, ``POST /logout`` with it, the IdP's end-session URL,
  and the gateway's ``/logout.html`` it redirects to.

Each HTTP request is timed (to the end of its body) and checked (the status; a page's JSON has no
``error`` on 200 and one on 403; the CSRF fetch returns a token; the logout answers a URL); anything
else, or an exception, is an error and is kept with the status, the correlation id and an excerpt of
the body. Every SAMPLE seconds the RSS (``VmRSS``) and thread count of every process of the scenario
(found below this one, as ``descendants`` lists them) are read from /proc, and their CPU time at both
ends. Memory growth is the median of the last minute against the median of minute 2 (minute 1 is
warm-up: imports, JWKS, connection pools, first sessions); it needs at least 3 minutes.

    .venv/bin/python bench/bench_soak.py                          # 10 minutes at 15 actions/s
    .venv/bin/python bench/bench_soak.py --minutes 3 --rate 10    # a short try
    .venv/bin/python bench/bench_soak.py --mix view=0.55,send=0.25 --minutes 5   # no new logins

The table goes to stdout, progress to stderr, everything measured to bench/results/soak-<time>.json.
The exit code is 0 when the run completed, whatever it measured.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import html
import json
import os
import platform
import random
import re
import ssl
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from yarl import URL

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.integration.local_stack import LocalStack, descendants, local_stack  # noqa: E402

RESULTS = ROOT / "bench" / "results"
CLK_TCK = os.sysconf("SC_CLK_TCK")
#: action -> weight; HTTP requests per action: view 1, send 2, login 4, logout 4 (1.85 on average)
MIX = {"view": 0.55, "send": 0.25, "login": 0.12, "logout": 0.08}
#: user -> share of logins; john lacks the CPI role (emulator/users.json): 403 is his expected answer
USERS = {"jane": 0.85, "john": 0.15}
EXPECTED = {"jane": 200, "john": 403}
IDPS = {"ias": 0.6, "xsuaa": 0.4}
PAGE = {"ias": "/homepage", "xsuaa": "/xsuaa/homepage"}
REQUEST_TIMEOUT_S = 30.0
ERROR_EXAMPLES = 5  # kept per (kind, status)
BASELINE_MINUTE = 2  # the memory baseline: minute 2 (minute 1 is warm-up); --baseline-minute
ERROR_LINE = re.compile(r"\bERROR\b|\bCRITICAL\b|Traceback|\"level\": ?\"(error|critical)\"")
LOGIN_FORM = re.compile(r'name="request" value="([^"]+)"')
WARNING_LINE = re.compile(r"\bWARNING\b|\"level\": ?\"warning\"")


def say(text: str = "") -> None:
    print(text, file=sys.stderr, flush=True)


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list (nan when empty)."""
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


# ---------------------------------------------------------------- what is measured


@dataclass
class Kind:
    """One kind of request (or a whole action): latencies, statuses, errors."""

    latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    errors: int = 0
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        return {"count": len(ordered), "errors": self.errors, "statuses": dict(self.statuses),
                "p50_ms": percentile(ordered, 50) * 1000, "p99_ms": percentile(ordered, 99) * 1000,
                "max_ms": (ordered[-1] if ordered else float("nan")) * 1000, "error_examples": self.examples}


class Recorder:
    """Every request and action, by kind; the per-minute counts for the throughput over time."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.kinds: dict[str, Kind] = {}
        self.actions: dict[str, Kind] = {}
        self.per_minute: Counter[int] = Counter()
        self.errors_per_minute: Counter[int] = Counter()
        self.requests = 0

    def request(self, kind: str, took: float, status: str, ok: bool, detail: dict[str, Any] | None) -> None:
        k = self.kinds.setdefault(kind, Kind())
        k.latencies.append(took)
        k.statuses[status] += 1
        minute = int((time.monotonic() - self.started) // 60)
        self.per_minute[minute] += 1
        self.requests += 1
        if not ok:
            k.errors += 1
            self.errors_per_minute[minute] += 1
            examples = k.examples.setdefault(status, [])
            if len(examples) < ERROR_EXAMPLES and detail is not None:
                examples.append({"at_s": round(time.monotonic() - self.started, 1), **detail})
                say(f"ERROR {kind}: {status} {json.dumps(detail)[:400]}")

    def action(self, kind: str, took: float, ok: bool) -> None:
        k = self.actions.setdefault(kind, Kind())
        k.latencies.append(took)
        k.statuses["ok" if ok else "failed"] += 1
        k.errors += 0 if ok else 1


Check = Callable[[aiohttp.ClientResponse, str], str | None]


def page_check(answer: aiohttp.ClientResponse, body: str) -> str | None:
    """A page's JSON: a 200 carries no ``error``; a 403 says why (``error``)."""
    try:
        data = json.loads(body)
    except ValueError:
        return f"not JSON ({answer.content_type})"
    if answer.status == 200 and data.get("error"):
        return "200 with an error in the JSON"
    if answer.status == 403 and not data.get("error"):
        return "403 without an error in the JSON"
    return None


class StepFailed(Exception):
    """A request of an action failed (already recorded); the rest of the action is skipped."""


@dataclass
class Browser:
    """A simulated user's browser: its own cookie jar and connections."""

    number: int
    http: aiohttp.ClientSession | None = None
    user: str = ""
    idp: str = ""  # the session's kind: "ias" | "xsuaa"; "" when logged out
    busy: bool = False


class Traffic:
    """The actions, as a browser and the page's script perform them."""

    def __init__(self, stack: LocalStack, recorder: Recorder, tls: ssl.SSLContext,
                 rng: random.Random) -> None:
        self.stack, self.rec, self.tls, self.rng = stack, recorder, tls, rng
        self.sent = 0
        self.abandoned = 0

    def new_http(self) -> aiohttp.ClientSession:
        # Like a browser: Secure cookies go to http://localhost too (cookies ignore ports, so the
        # gateway's and the emulator's share the jar, as in a browser).
        jar = aiohttp.CookieJar(unsafe=True, treat_as_secure_origin=[URL(self.stack.gateway)])
        return aiohttp.ClientSession(
            cookie_jar=jar, connector=aiohttp.TCPConnector(ssl=self.tls, limit_per_host=6),
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
            headers={"User-Agent": "Mozilla/5.0 bench_soak/1"})

    async def call(self, kind: str, http: aiohttp.ClientSession, method: str, url: str, expect: int,
                   check: Check | None = None, **kwargs: Any) -> tuple[aiohttp.ClientResponse, str]:
        """One request: timed to the end of its body, recorded; StepFailed unless ``expect`` came
        and ``check`` (of a response with that status) found no problem."""
        started = time.perf_counter()
        try:
            async with http.request(method, url, allow_redirects=False, **kwargs) as answer:
                body = await answer.text(errors="replace")
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            took = time.perf_counter() - started
            name = type(exc).__name__
            self.rec.request(kind, took, name, False, {"exception": f"{name}: {exc}"[:300],
                                                       "path": URL(url).path})
            raise StepFailed(kind) from exc
        took = time.perf_counter() - started
        problem = f"expected {expect}" if answer.status != expect else check(answer, body) if check else None
        detail = None if problem is None else {
            "problem": problem, "path": URL(url).path, "location": answer.headers.get("Location"),
            "correlation_id": answer.headers.get("x-correlationid"), "excerpt": " ".join(body.split())[:300]}
        self.rec.request(kind, took, str(answer.status), problem is None, detail)
        if problem is not None:
            raise StepFailed(kind)
        return answer, body

    async def run(self, action: str, browser: Browser) -> None:
        started = time.perf_counter()
        label = action
        try:
            if action == "login":
                idp = self.rng.choices(list(IDPS), list(IDPS.values()))[0]
                label = f"login {idp}"
                await self.login(browser, idp)
            elif action == "view":
                await self.view(browser)
            elif action == "send":
                await self.send(browser)
            else:
                await self.logout(browser)
            ok = True
        except StepFailed:
            ok = False
        finally:
            browser.busy = False
        self.rec.action(label, time.perf_counter() - started, ok)

    async def login(self, browser: Browser, idp: str) -> None:
        if browser.http is not None:
            if browser.idp:
                self.abandoned += 1  # the browser is closed with its session still alive
            await browser.http.close()
        browser.http, browser.idp = self.new_http(), ""
        browser.user = self.rng.choices(list(USERS), list(USERS.values()))[0]
        http, gateway, path = browser.http, self.stack.gateway, PAGE[idp]
        first, _ = await self.call(f"login {idp}: GET page -> 302", http, "GET", gateway + path, 302)
        authorize = first.headers["Location"]
        _, page = await self.call(f"login {idp}: IdP login page", http, "GET", authorize, 200,
                                  lambda _, body: None if LOGIN_FORM.search(body) else "no login form")
        found = LOGIN_FORM.search(page)
        assert found is not None
        origin = authorize.split("/oauth", 1)[0]
        action = origin + ("/oauth2/login" if "/oauth2/" in authorize else "/login.do")
        done, _ = await self.call(f"login {idp}: IdP form POST -> 302", http, "POST", action, 302,
                                  data={"request": html.unescape(found.group(1)), "user": browser.user})
        callback = done.headers["Location"]
        landing = f'content="0;url={path}"'
        await self.call(f"login {idp}: GET /login/callback", http, "GET", callback, 200,
                        lambda _, body: None if landing in body else "the landing page leads elsewhere")
        browser.idp = idp

    async def view(self, browser: Browser) -> None:
        assert browser.http is not None
        await self.call(f"view: GET {PAGE[browser.idp]}", browser.http, "GET",
                        self.stack.gateway + PAGE[browser.idp], EXPECTED[browser.user], page_check,
                        headers={"Accept": "application/json"})

    async def csrf_token(self, browser: Browser) -> str:
        assert browser.http is not None
        answer, _ = await self.call("csrf: HEAD x-csrf-token: fetch", browser.http, "HEAD",
                                    self.stack.gateway + PAGE[browser.idp], 200,
                                    lambda answer, _: None if answer.headers.get("x-csrf-token")
                                    else "no x-csrf-token header", headers={"x-csrf-token": "fetch"})
        return answer.headers.get("x-csrf-token", "")

    async def send(self, browser: Browser) -> None:
        assert browser.http is not None
        token = await self.csrf_token(browser)
        self.sent += 1
        body = json.dumps({"message": f"soak {self.sent}", "browser": browser.number})
        await self.call(f"iflow: POST {PAGE[browser.idp]}", browser.http, "POST",
                        self.stack.gateway + PAGE[browser.idp], EXPECTED[browser.user], page_check, data=body,
                        headers={"Content-Type": "application/json", "Accept": "application/json",
                                 "x-csrf-token": token})

    async def logout(self, browser: Browser) -> None:
        assert browser.http is not None
        token = await self.csrf_token(browser)
        http = browser.http
        _, target = await self.call("logout: POST /logout", http, "POST", self.stack.gateway + "/logout", 200,
                                    lambda _, body: None if body.startswith(("http://", "https://"))
                                    else "no logout URL", headers={"x-csrf-token": token})
        browser.idp = ""  # the gateway's session has ended, whatever the IdP does next
        back, _ = await self.call("logout: IdP end-session -> 302", http, "GET", target.strip(), 302)
        await self.call("logout: GET /logout.html", http, "GET", back.headers["Location"], 200)


# ---------------------------------------------------------------- the processes


def stat_fields(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def rss_and_threads(pid: int) -> tuple[float, int]:
    """VmRSS in MiB and the number of threads (/proc/<pid>/status)."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                  if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["Threads"])


def cpu_seconds(pid: int) -> float:
    fields = stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all cores (/proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return (sum(values[:8]) - idle) / CLK_TCK, sum(values[:8]) / CLK_TCK


def scenario_processes() -> dict[str, int]:
    """The scenario's processes below this one, by role: local_run, emulator, gateway, gunicorn
    master and workers (numbered by pid)."""
    found = descendants(os.getpid())
    roles: dict[str, int] = {}
    workers = []
    for pid, cmdline in found.items():
        try:
            parent = int(stat_fields(pid)[1])
        except (OSError, IndexError, ValueError):
            continue
        if "emulator.local_run" in cmdline:
            roles["local_run (supervisor)"] = pid
        elif "-m emulator run" in cmdline:
            roles["emulator"] = pid
        elif "-m gateway" in cmdline:
            roles["gateway"] = pid
        elif "gunicorn" in cmdline:
            if "emulator.local_run" in found.get(parent, ""):
                roles["gunicorn master"] = pid
            else:
                workers.append(pid)
    for number, pid in enumerate(sorted(workers), 1):
        roles[f"gunicorn worker {number}" if len(workers) > 1 else "gunicorn worker"] = pid
    return roles


class Sampler:
    """RSS of each process every ``every`` seconds; CPU time and machine load at both ends."""

    def __init__(self, started: float, every: float, progress: Callable[[], dict[str, int]]) -> None:
        self.started, self.every, self.progress = started, every, progress
        self.samples: list[dict[str, Any]] = []
        self.pids: dict[str, int] = {}
        self.events: list[str] = []

    def sample(self) -> None:
        roles = scenario_processes()
        for role, pid in roles.items():
            if self.pids.get(role, pid) != pid:
                self.events.append(f"{time.monotonic() - self.started:.0f} s: {role} pid "
                                   f"{self.pids[role]} -> {pid}")
            self.pids[role] = pid
        rss, threads = {}, {}
        roles["load generator (this script)"] = os.getpid()
        for role, pid in roles.items():
            with contextlib.suppress(OSError, KeyError):
                mib, threads[role] = rss_and_threads(pid)
                rss[role] = round(mib, 2)
        load = float(Path("/proc/loadavg").read_text().split()[0])
        self.samples.append({"t": round(time.monotonic() - self.started, 1), "rss_mib": rss,
                             "threads": threads, "loadavg1": load, **self.progress()})

    async def run(self, until: float) -> None:
        while time.monotonic() < until:
            self.sample()
            await asyncio.sleep(min(self.every, max(0.0, until - time.monotonic())))
        self.sample()

    def growth(self, duration: float, minute: int = BASELINE_MINUTE) -> dict[str, dict[str, Any]]:
        result = {}
        start, end = (minute - 1) * 60.0, minute * 60.0
        roles = sorted({r for s in self.samples for r in s["rss_mib"]})
        for role in roles:
            series = [(s["t"], s["rss_mib"][role]) for s in self.samples if role in s["rss_mib"]]
            base = [v for t, v in series if start <= t < end]
            last = [v for t, v in series if t >= duration - 60]
            threads = [s["threads"][role] for s in self.samples if role in s.get("threads", {})]
            row: dict[str, Any] = {"first_mib": series[0][1], "max_mib": max(v for _, v in series),
                                   "final_mib": series[-1][1], "threads_first": threads[0] if threads else 0,
                                   "threads_max": max(threads, default=0)}
            if base and last and duration - 60 >= end:  # the two minutes do not overlap
                row["minute2_median_mib"] = statistics.median(base)
                row["last_minute_median_mib"] = statistics.median(last)
                row["growth_pct"] = (row["last_minute_median_mib"] / row["minute2_median_mib"] - 1) * 100
            result[role] = row
        return result


def cpu_snapshot(pids: dict[str, int]) -> dict[str, float]:
    snap = {}
    for role, pid in pids.items():
        with contextlib.suppress(OSError):
            snap[role] = cpu_seconds(pid)
    snap["load generator (this script)"] = time.process_time()
    busy, total = machine_busy_seconds()
    snap["_machine_busy"], snap["_machine_total"] = busy, total
    return snap


# ---------------------------------------------------------------- the run


async def drive(stack: LocalStack, args: argparse.Namespace, result: dict[str, Any]) -> None:
    tls = ssl.create_default_context(cafile=str(stack.ca_file))
    rng = random.Random(args.seed)
    duration = args.minutes * 60
    started = time.monotonic()
    recorder = Recorder(started)
    traffic = Traffic(stack, recorder, tls, rng)
    sampler = Sampler(started, args.sample, lambda: {
        "requests": recorder.requests,
        "logins": sum(len(k.latencies) for name, k in recorder.actions.items() if name.startswith("login"))})
    browsers = [Browser(n) for n in range(args.users)]
    sampler.sample()
    cpu0 = cpu_snapshot(sampler.pids)
    sampling = asyncio.create_task(sampler.run(started + duration))
    in_flight: set[asyncio.Task[None]] = set()
    skipped: Counter[str] = Counter()
    late: list[float] = []
    interval, ticks, next_report = 1 / args.rate, 0, started + 30
    loop = asyncio.get_running_loop()
    next_at = loop.time()
    end_at = next_at + duration
    while next_at < end_at:
        wait = next_at - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        late.append(max(0.0, -wait))
        ticks += 1
        action = rng.choices(list(args.mix), list(args.mix.values()))[0]
        browser = pick(browsers, action, rng)
        if browser is None and action != "login":  # at the start nobody is logged in yet
            action, browser = "login", pick(browsers, "login", rng)
        if browser is None:
            skipped[action] += 1  # every browser busy: the scenario is not keeping up
        else:
            browser.busy = True
            task = asyncio.create_task(traffic.run(action, browser))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        next_at += interval
        if time.monotonic() >= next_report:
            next_report += 30
            elapsed = time.monotonic() - started
            rss = sampler.samples[-1]["rss_mib"]
            say(f"{elapsed:5.0f} s: {recorder.requests} requests ({recorder.requests / elapsed:.1f}/s), "
                f"{sum(k.errors for k in recorder.kinds.values())} errors, {len(in_flight)} in flight, "
                f"load {sampler.samples[-1]['loadavg1']}; RSS "
                + ", ".join(f"{r.split(' (')[0]} {v:.1f}" for r, v in rss.items()))
    load_s = time.monotonic() - started
    if in_flight:
        await asyncio.wait(in_flight, timeout=REQUEST_TIMEOUT_S * 5)
    await sampling
    cpu1 = cpu_snapshot(sampler.pids)
    elapsed = time.monotonic() - started
    for browser in browsers:
        if browser.http is not None:
            await browser.http.close()
    late.sort()
    minutes = max(recorder.per_minute, default=-1) + 1
    result.update({
        "elapsed_s": round(elapsed, 1), "load_s": round(load_s, 1), "ticks": ticks,
        "skipped_all_busy": dict(skipped), "abandoned_sessions": traffic.abandoned,
        "schedule_lag_ms": {"p50": percentile(late, 50) * 1000, "p99": percentile(late, 99) * 1000,
                            "max": late[-1] * 1000 if late else 0.0},
        "requests_total": recorder.requests, "throughput_rps": recorder.requests / elapsed,
        "requests_per_minute": [recorder.per_minute[m] for m in range(minutes)],
        "errors_per_minute": [recorder.errors_per_minute[m] for m in range(minutes)],
        "kinds": {k: v.summary() for k, v in sorted(recorder.kinds.items())},
        "actions": {k: v.summary() for k, v in sorted(recorder.actions.items())},
        "memory": sampler.growth(duration, args.baseline_minute), "samples": sampler.samples,
        "pid_changes": sampler.events,
        "pids": sampler.pids, "cpu": cpu_share(cpu0, cpu1, elapsed),
        "loadavg1": {"min": min(s["loadavg1"] for s in sampler.samples),
                     "median": statistics.median(s["loadavg1"] for s in sampler.samples),
                     "max": max(s["loadavg1"] for s in sampler.samples)},
    })


def pick(browsers: list[Browser], action: str, rng: random.Random) -> Browser | None:
    """An idle browser fit for ``action``: logged in, or for a login a logged-out one first."""
    idle = [b for b in browsers if not b.busy]
    if action == "login":
        out = [b for b in idle if not b.idp]
        return rng.choice(out or idle) if (out or idle) else None
    logged_in = [b for b in idle if b.idp]
    return rng.choice(logged_in) if logged_in else None


def cpu_share(cpu0: dict[str, float], cpu1: dict[str, float], elapsed: float) -> dict[str, float]:
    """Average CPU use over the run, in cores (1.0 = one core busy all the time)."""
    share = {k: (cpu1[k] - cpu0[k]) / elapsed for k in cpu1 if k in cpu0 and not k.startswith("_")}
    busy = (cpu1["_machine_busy"] - cpu0["_machine_busy"]) / elapsed
    share["whole machine"] = busy
    share["everything else on the machine"] = busy - sum(v for k, v in share.items() if k != "whole machine")
    return share


def scan_logs(text: str) -> dict[str, Any]:
    """Error and warning lines of the scenario's output, by process prefix ("app | ", ...)."""
    found: dict[str, Any] = {}
    for line in text.splitlines():
        prefix = line.split(" | ", 1)[0] if " | " in line[:12] else "local_run"
        entry = found.setdefault(prefix, {"lines": 0, "errors": 0, "warnings": 0, "examples": []})
        entry["lines"] += 1
        if ERROR_LINE.search(line):
            entry["errors"] += 1
        elif WARNING_LINE.search(line):
            entry["warnings"] += 1
        else:
            continue
        if len(entry["examples"]) < 5:
            entry["examples"].append(line[:300])
    return found


def machine_facts() -> dict[str, Any]:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "?")
    return {"nproc": os.cpu_count(), "cpu_model": model, "kernel": platform.release(),
            "python": platform.python_version(), "aiohttp": aiohttp.__version__,
            "mem_total_mib": int(Path("/proc/meminfo").read_text().split()[1]) // 1024,
            "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3]}


# ---------------------------------------------------------------- report


def report(result: dict[str, Any], goal_pct: float) -> list[str]:
    m = result["machine"]
    out = [f"{result['date']}: {result['minutes']:g} min at {result['rate']:g} actions/s, {result['users']} "
           f"browsers; {m['nproc']} CPUs {m['cpu_model']}, Python {m['python']}, aiohttp {m['aiohttp']}",
           f"{result['requests_total']:,} requests in {result['elapsed_s']:.0f} s = "
           f"{result['throughput_rps']:.1f} req/s; per minute: "
           + " / ".join(map(str, result["requests_per_minute"])),
           "", "| request | count | errors | statuses | p50 | p99 | max |",
           "|---|---:|---:|---|---:|---:|---:|"]

    def row(name: str, s: dict[str, Any]) -> str:
        statuses = ", ".join(f"{k}: {v:,}" for k, v in sorted(s["statuses"].items()))
        return (f"| {name} | {s['count']:,} | {s['errors']} | {statuses} | {s['p50_ms']:.1f} ms "
                f"| {s['p99_ms']:.1f} ms | {s['max_ms']:.0f} ms |")

    for name, s in result["kinds"].items():
        out.append(row(name, s))
    for name, s in result["actions"].items():
        out.append(row(f"= {name} (whole action)", s))
    baseline = result.get("baseline_minute", 2)
    out += ["", f"| process | RSS at start | minute {baseline} (median) | last minute (median) | growth "
                "| max | threads (start, max) | CPU (cores) |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for role, mem in result["memory"].items():
        growth = f"{mem['growth_pct']:+.1f}%" if "growth_pct" in mem else "-"
        nan = float("nan")
        base, last = mem.get("minute2_median_mib", nan), mem.get("last_minute_median_mib", nan)
        out.append(f"| {role} | {mem['first_mib']:.1f} MiB | {base:.1f} MiB | {last:.1f} MiB | {growth} | "
                   f"{mem['max_mib']:.1f} MiB | {mem['threads_first']}, {mem['threads_max']} | "
                   f"{result['cpu'].get(role, float('nan')):.2f} |")
    cpu = result["cpu"]
    lag = result["schedule_lag_ms"]
    out += ["", f"CPU over the run: whole machine {cpu['whole machine']:.2f} of {m['nproc']} cores, of which "
                f"{cpu['everything else on the machine']:.2f} not this scenario; load average (1 min) "
                f"{result['loadavg1']['min']} / {result['loadavg1']['median']} / {result['loadavg1']['max']} "
                "(min / median / max)",
            f"schedule lag p50 {lag['p50']:.1f} ms, p99 {lag['p99']:.1f} ms, max {lag['max']:.0f} ms; "
            f"actions skipped because every browser was busy: {sum(result['skipped_all_busy'].values())}; "
            f"sessions abandoned without logout: {result['abandoned_sessions']}"]
    if result["pid_changes"]:
        out.append("process changes: " + "; ".join(result["pid_changes"]))
    for prefix, logged in result["logs"].items():
        out.append(f"log of {prefix}: {logged['lines']:,} lines, {logged['errors']} error lines, "
                   f"{logged['warnings']} warning lines")
    errors = sum(s["errors"] for s in result["kinds"].values())
    out += ["", "Goals:", ""]
    out.append(f"* [{'PASS' if errors == 0 else 'FAIL'}] no errors: {errors} of {result['requests_total']:,}")
    for role, mem in result["memory"].items():
        if "growth_pct" in mem and not role.startswith("load generator"):
            ok = mem["growth_pct"] < goal_pct
            out.append(f"* [{'PASS' if ok else 'FAIL'}] {role}: RSS growth {mem['growth_pct']:+.1f}% "
                       f"(< {goal_pct:g}% after warm-up)")
    for name, s in result["kinds"].items():
        for status, examples in s["error_examples"].items():
            for example in examples:
                out.append(f"  error {name} {status}: {json.dumps(example)[:500]}")
    return out


async def amain(args: argparse.Namespace) -> int:
    result: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine_facts(),
                              "minutes": args.minutes, "rate": args.rate, "users": args.users,
                              "mix": args.mix, "user_shares": USERS, "idp_shares": IDPS, "seed": args.seed,
                              "baseline_minute": args.baseline_minute,
                              "token_cache_size": os.environ.get("TOKEN_CACHE_SIZE", "2000 (default)")}
    say("starting the local scenario (emulator, app under gunicorn, gateway)")
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as folder:
        with local_stack(Path(folder) / "emulator") as stack:
            say(f"ready: gateway {stack.gateway}, emulator {stack.emulator}; driving {args.minutes:g} min")
            try:
                await drive(stack, args, result)
            finally:
                say("stopping the scenario")
        result["logs"] = scan_logs(stack.output.rest())
    lines = report(result, args.goal)
    print("\n".join(lines))
    out = args.json or RESULTS / f"soak-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    say(f"wrote {out}")
    return 0


def mix(text: str) -> dict[str, float]:
    """``view=0.7,send=0.3``: weights of the actions (the missing ones get 0)."""
    weights = {name: 0.0 for name in MIX}
    for part in text.split(","):
        name, _, value = part.partition("=")
        if name.strip() not in MIX:
            raise argparse.ArgumentTypeError(f"unknown action {name!r}: one of {', '.join(MIX)}")
        weights[name.strip()] = float(value)
    if not any(weights.values()):
        raise argparse.ArgumentTypeError("every weight is 0")
    return weights


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the load (default 10)")
    parser.add_argument("--rate", type=float, default=15.0,
                        help="user actions started per second (default 15, about 28 HTTP requests/s)")
    parser.add_argument("--users", type=int, default=32, help="simulated browsers (default 32)")
    parser.add_argument("--sample", type=float, default=5.0, help="seconds between RSS samples")
    parser.add_argument("--goal", type=float, default=10.0, help="allowed RSS growth after warm-up, in %%")
    parser.add_argument("--mix", type=mix, default=MIX,
                        help="action weights, e.g. view=0.7,send=0.3 (default: "
                        + ",".join(f"{k}={v:g}" for k, v in MIX.items()) + ")")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--baseline-minute", type=int, default=BASELINE_MINUTE,
                        help="the minute whose median RSS is the baseline (default 2); with bounded caches "
                        "that fill later (TOKEN_CACHE_SIZE), the first minute after they are full")
    parser.add_argument("--json", type=Path, help="where to write the results (default bench/results/)")
    return asyncio.run(amain(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
