"""The circuit breaker in front of the token endpoint and the iFlow (F-04, F-21): it opens after
five transient failures in a row, answers 503 with Retry-After without calling while open,
lets calls through after the cooldown (half-open), and closes on the first success."""

from __future__ import annotations

import pytest
import responses

from seccore import IflowClient, IflowError, make_session
from seccore.outbound import CircuitBreaker
from tests import factories as f

IFLOW_URL = f.CPI_URL + "/http/ntif"


@pytest.mark.parametrize(("outcomes", "open_for"), [
    pytest.param([True] * 4, 0, id="four failures: still closed"),
    pytest.param([True] * 5, 30, id="five failures: open for the cooldown"),
    pytest.param([True] * 4 + [False] + [True] * 4, 0, id="a success in between resets the count"),
    pytest.param([False] * 10, 0, id="successes only"),
])
def test_the_breaker_opens_after_five_failures_in_a_row(outcomes: list[bool], open_for: int) -> None:
    breaker = CircuitBreaker(clock=f.FakeClock(1000.0))
    for failed in outcomes:
        breaker.record(failed=failed)
    assert breaker.seconds_open() == open_for


def test_after_the_cooldown_one_call_goes_through_and_decides() -> None:
    clock = f.FakeClock(1000.0)
    breaker = CircuitBreaker(clock=clock)
    for _ in range(5):
        breaker.record(failed=True)
    clock.advance(29.5)
    assert breaker.seconds_open() == 1
    clock.advance(0.5)
    assert breaker.seconds_open() == 0  # half-open: the next call is let through
    breaker.record(failed=True)
    assert breaker.seconds_open() == 30  # it failed again: open at once, no five more tries
    clock.advance(30)
    breaker.record(failed=False)
    breaker.record(failed=True)
    assert breaker.seconds_open() == 0  # a success closed it: one failure is not enough again


def test_f21_the_iflow_breaker_stops_calls_to_an_unavailable_runtime_and_recovers() -> None:
    clock = f.FakeClock(1000.0)
    client = IflowClient(f.cpi_binding(), "/http/ntif", make_session(retries=0, retry_statuses=False),
                         breaker=CircuitBreaker(clock=clock))
    with responses.RequestsMock() as mock:
        unavailable = mock.post(IFLOW_URL, status=503)
        for _ in range(5):
            with pytest.raises(IflowError):
                client.call("token", b"{}", "application/json", "cid")
        with pytest.raises(IflowError) as refused:
            client.call("token", b"{}", "application/json", "cid")
        assert unavailable.call_count == 5  # the sixth was not sent
        assert refused.value.status == 503 and refused.value.retry_after == 30
        clock.advance(30)
        mock.replace(responses.POST, IFLOW_URL, json={"ok": True})
        assert client.call("token", b"{}", "application/json", "cid").status == 200


def test_an_iflow_that_fails_on_its_own_does_not_open_the_breaker() -> None:
    """A 500 is about this message (the iFlow's own error), not about the runtime."""
    client = IflowClient(f.cpi_binding(), "/http/ntif", make_session(retries=0, retry_statuses=False),
                         breaker=CircuitBreaker(clock=f.FakeClock(1000.0)))
    with responses.RequestsMock() as mock:
        failing = mock.post(IFLOW_URL, status=500, body="boom")
        for _ in range(7):
            with pytest.raises(IflowError):
                client.call("token", b"{}", "application/json", "cid")
        assert failing.call_count == 7
