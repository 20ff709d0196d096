"""F-29: a burst of 50 users at once on the app under gunicorn as shipped (2 workers x 64
threads): every request is answered, each user's token is exchanged exactly once (the cache
and the per-user single flight hold under concurrency), and every iFlow call is made once.
Latency under load is measured in bench/, not asserted here."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests import factories
from tests.integration.conftest import app_environ, running_upstream
from tests.integration.processes import RunningApp, free_port, running_gunicorn
from tests.integration.servers import IFLOW_PATH, TOKEN_PATH, Pki, Upstream

pytestmark = pytest.mark.integration

USERS = 50
REQUESTS_PER_USER = 3


@pytest.fixture(scope="module")
def burst_upstream(pki: Pki) -> Iterator[Upstream]:
    with running_upstream(pki) as server:
        yield server


@pytest.fixture(scope="module")
def shipped_app(burst_upstream: Upstream, pki: Pki,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    env = app_environ(burst_upstream, pki, free_port()) | {"WEB_CONCURRENCY": "2", "GUNICORN_THREADS": "64"}
    with running_gunicorn(env, tmp_path_factory.mktemp("burst") / "stderr.log") as app:
        yield app


def test_f29_fifty_users_at_once_are_all_served_with_one_exchange_each(shipped_app: RunningApp,
                                                                       burst_upstream: Upstream) -> None:
    burst_upstream.reset()
    start = threading.Barrier(USERS)

    def user(_: int) -> list[int]:
        token = factories.sign(factories.xsuaa_claims(jti=uuid.uuid4().hex))
        with requests.Session() as browser:  # one keep-alive connection: one worker, one cache
            start.wait(timeout=30)
            return [browser.get(shipped_app.base_url + "/homepage", timeout=30, headers={
                "Authorization": f"Bearer {token}", "Accept": "application/json"}).status_code
                for _ in range(REQUESTS_PER_USER)]

    with ThreadPoolExecutor(max_workers=USERS) as pool:
        statuses = [s for answers in pool.map(user, range(USERS)) for s in answers]

    assert statuses == [200] * USERS * REQUESTS_PER_USER
    assert len(burst_upstream.calls_to(TOKEN_PATH)) == USERS  # none lost, none duplicated
    assert len(burst_upstream.calls_to(IFLOW_PATH)) == USERS * REQUESTS_PER_USER
    assert burst_upstream.refusals() == []
