"""How many slow iFlow calls one app instance holds: the shipped gunicorn.conf.py under load.

Starts the local HTTPS stand-ins of XSUAA and CPI (tests/integration/servers.py) with an
iFlow that takes DELAY seconds, runs the app under gunicorn with the manifest's command,
and sends waves of C concurrent users (each with its own token, so each needs its own
exchange). Reports the wall time of each wave, p50/p99 latency, errors, and how fast
/health answers while the wave is in flight. A wave that fits the thread pool finishes in
about DELAY; a larger one queues and takes a multiple of it.

    .venv/bin/python bench/bench_concurrency.py [--delay 2] [--waves 32,64,96,128]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import factories  # noqa: E402
from tests.integration.conftest import app_environ  # noqa: E402
from tests.integration.processes import free_port  # noqa: E402
from tests.integration.servers import Upstream, make_pki  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay", type=float, default=2.0)
    parser.add_argument("--waves", default="32,64,96,128")
    parser.add_argument("--workers", default="2")
    parser.add_argument("--threads", default="32")
    args = parser.parse_args()
    waves = [int(w) for w in args.waves.split(",")]
    with tempfile.TemporaryDirectory() as folder:
        pki = make_pki(Path(folder))
        upstream = Upstream(client_id=factories.CPI_CLIENT_ID, client_secret=factories.CPI_SECRET,
                            zone_id=factories.ZONE_ID)
        upstream.start(pki)
        upstream.mode.iflow_delay = args.delay
        port = free_port()
        env = app_environ(upstream, pki, port)
        env.update(WEB_CONCURRENCY=args.workers, GUNICORN_THREADS=args.threads, LOG_FORMAT="text")
        with open(Path(folder) / "gunicorn.log", "wb") as log:
            process = subprocess.Popen(  # noqa: S603 - fixed argv of this interpreter
                [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "app:create_app()"],
                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_ready(base, process)
            print(f"gunicorn {args.workers} workers x {args.threads} threads, iFlow delay {args.delay} s")
            print(f"{'users':>6} {'wall s':>7} {'p50 s':>6} {'p99 s':>6} {'errors':>6} {'/health ms':>10}")
            for users in waves:
                run_wave(base, users, args.delay)
        finally:
            process.terminate()
            process.wait(timeout=30)
            upstream.stop()


def wait_ready(base: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("gunicorn exited during start-up")
        try:
            if requests.get(base + "/health", timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            time.sleep(0.05)
    raise SystemExit("gunicorn did not become ready")


def run_wave(base: str, users: int, delay: float) -> None:
    tokens = [factories.sign(factories.xsuaa_claims(jti=f"wave{users}-{i}-{time.time_ns()}"))
              for i in range(users)]

    def one(token: str) -> tuple[float, int]:
        started = time.perf_counter()
        try:
            status = requests.get(base + "/homepage", timeout=120, headers={
                "Authorization": f"Bearer {token}", "Accept": "application/json"}).status_code
        except requests.RequestException:
            status = 0
        return time.perf_counter() - started, status

    with ThreadPoolExecutor(max_workers=users + 1) as pool:
        started = time.perf_counter()
        futures = [pool.submit(one, t) for t in tokens]
        time.sleep(delay / 2)  # measure /health while the wave is in flight
        health = one_health(base)
        results = [f.result() for f in futures]
        wall = time.perf_counter() - started
    latencies = sorted(r[0] for r in results)
    errors = sum(1 for r in results if r[1] != 200)
    if errors:
        print("   statuses:", sorted({r[1] for r in results}))
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(f"{users:>6} {wall:>7.2f} {statistics.median(latencies):>6.2f} {p99:>6.2f} {errors:>6} "
          f"{health * 1000:>10.0f}")


def one_health(base: str) -> float:
    started = time.perf_counter()
    requests.get(base + "/health", timeout=120)
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
