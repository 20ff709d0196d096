"""One request's way from the user's token to the iFlow's answer, step by step.

validate (the user's JWT) → exchange (jwt-bearer at XSUAA) → role (is the CPI role in the
exchanged scope?) → iflow (CPI). Each step is timed and recorded, so the page can show
what happened even when a step fails.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from seccore import (
    ExchangedToken,
    IflowClient,
    IflowError,
    IflowResult,
    JwtBearerExchange,
    SecurityError,
    TokenValidator,
    ValidatedToken,
)
from seccore.bindings import CpiBinding

__all__ = ["Flow", "FlowResult", "Step"]

log = logging.getLogger(__name__)

#: Token endpoint errors that mean the binding, not the user, is wrong: an operator must act.
BROKEN_BINDING = frozenset({"invalid_client", "unauthorized_client"})
NOT_CALLED_CROSS_SITE = ("not called: the page was opened from another site, which may not set the "
                         "iFlow off; send it from here")
StepName = Literal["validate", "exchange", "role", "iflow"]
T = TypeVar("T")


@dataclass
class Step:
    name: StepName
    outcome: Literal["ok", "failed", "skipped"] = "skipped"
    took_ms: float = 0.0
    note: str = ""


@dataclass
class FlowResult:
    user: ValidatedToken | None = None
    exchanged: ExchangedToken | None = None
    iflow: IflowResult | None = None
    error: SecurityError | None = None
    steps: dict[str, Step] = field(default_factory=lambda: {
        n: Step(n) for n in ("validate", "exchange", "role", "iflow")})

    @property
    def status(self) -> int:
        return self.error.status if self.error else 200


class Flow:
    """Runs validate → exchange → role → iflow for one bearer token."""

    def __init__(self, validator: TokenValidator, exchange: JwtBearerExchange, iflow: IflowClient,
                 cpi: CpiBinding, cpi_role: str | None) -> None:
        self._validator = validator
        self._exchange = exchange
        self._iflow = iflow
        self._cpi = cpi
        self._cpi_role = cpi_role

    @property
    def required_cpi_scope(self) -> str | None:
        """The scope that carries the CPI role, e.g. ``it-rt-mysub!b196.Ntif.Read``."""
        if not self._cpi_role:
            return None
        broker = self._cpi.broker_xsappname
        return f"{broker}.{self._cpi_role}" if broker else None

    def run(self, bearer: str | None, payload: bytes, content_type: str, correlation_id: str,
            call_iflow: bool = True) -> FlowResult:
        """All steps; with ``call_iflow`` False everything but the iFlow call (a page opened from
        another site shows the tokens, but may not set the iFlow off)."""
        result = FlowResult()
        try:
            result.user = self._timed(result, "validate", lambda: self._validator.validate(bearer))
            result.exchanged = self._timed(result, "exchange", lambda: self._exchange.exchange(result.user))
            if result.exchanged.from_cache:
                result.steps["exchange"].note = "cached"
            self._timed(result, "role", lambda: self._check_role(result.exchanged))
            if not self._cpi_role:
                result.steps["role"].note = "not checked: no CPI role is configured"
            if not call_iflow:
                result.steps["iflow"].note = NOT_CALLED_CROSS_SITE
                return result
            result.iflow = self._timed(result, "iflow", lambda: self._call_iflow(
                result, payload, content_type, correlation_id))
        except SecurityError as exc:
            result.error = exc
            step = result.steps.get(exc.step or "validate")
            if step is not None:
                step.outcome = "failed"
                step.note = exc.cause
            log.info("request refused", extra={"step": exc.step, "status": exc.status, "code": exc.code})
            if getattr(exc, "server_error", "") in BROKEN_BINDING:  # every user fails until it is fixed
                log.error("XSUAA refused the CPI binding's client (%s): check or renew the it-rt service key",
                          exc.server_error)  # type: ignore[attr-defined]
        return result

    def _timed(self, result: FlowResult, name: str, work: Callable[[], T]) -> T:
        step = result.steps[name]
        started = time.perf_counter()
        try:
            value = work()
        finally:
            step.took_ms = (time.perf_counter() - started) * 1000
        step.outcome = "ok"
        return value

    def has_cpi_role(self, scopes: Collection[str]) -> bool | None:
        """Whether ``scopes`` carry the CPI role; None when no role is required."""
        if not self._cpi_role:
            return None
        wanted = self.required_cpi_scope
        return (wanted in scopes) if wanted else any(s.endswith("." + self._cpi_role) for s in scopes)

    def _check_role(self, token: ExchangedToken) -> None:
        """Answer 403 ourselves when the exchanged token cannot pass CPI's role check."""
        if self.has_cpi_role(token.scopes) is False:
            wanted = self.required_cpi_scope
            missing = IflowError(
                f"the exchanged token lacks the CPI role {self._cpi_role} "
                f"(scope {wanted or '*.' + self._cpi_role}), so CPI would answer 403; "
                "the iFlow was not called",
                f"add the role {self._cpi_role} to a role collection mapped to the user's group "
                "(or assigned to the user), and check that config-cpi.json lists it under \"roles\"",
                status=403)
            missing.step = "role"
            raise missing

    def _call_iflow(self, result: FlowResult, payload: bytes, content_type: str,
                    correlation_id: str) -> IflowResult:
        assert result.user is not None and result.exchanged is not None
        try:
            return self._iflow.call(result.exchanged.access_token, payload, content_type, correlation_id)
        except IflowError as exc:
            # A cached token CPI refuses may be stale (CPI caches roles up to 1 h): exchange once
            # more and retry once; a fresh token that is refused is a configuration error.
            if exc.upstream_status != 401 or not result.exchanged.from_cache:
                raise
        self._exchange.forget(result.user)
        result.exchanged = self._exchange.exchange(result.user)
        result.steps["exchange"].note = "exchanged again after CPI refused the cached token"
        return self._iflow.call(result.exchanged.access_token, payload, content_type, correlation_id)
