"""This request as a sequence diagram: who called whom, with what outcome and how long it took.

The model is computed here (lanes, messages, where each goes); ``templates/_flow.svg`` draws
it as inline SVG styled by ``static/style.css``: no script, no external asset, every text
autoescaped by Jinja. A failed step is drawn red with the diagnosis right under it; the
steps it prevented are drawn dashed as "not called".
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import Literal

from app.flow import FlowResult
from seccore.logs import redact

__all__ = ["Arrow", "Drawing", "LANES", "draw"]

Status = Literal["ok", "failed", "skipped", "cached"]
LANES = ("Browser", "Gateway", "App", "XSUAA token endpoint", "CPI iFlow")
BROWSER, GATEWAY, APP, XSUAA, CPI = range(len(LANES))

LANE_WIDTH = 180
MARGIN_X = 90       # the first lane's centre: room for its title
TOP = 64            # the first message's y, below the lane titles
ROW = 40
SELF_LOOP = 42      # how far a call to itself reaches to the right
DIAGNOSIS_CHARS = 110
DIAGNOSIS_LINE = 17


@dataclass(frozen=True)
class Arrow:
    x1: int
    x2: int
    y: int
    status: Status
    label: str    # what goes over the wire, above the arrow
    detail: str   # outcome and time, below the arrow

    @property
    def is_self(self) -> bool:
        return self.x1 == self.x2

    @property
    def label_x(self) -> int:
        return self.x1 + SELF_LOOP + 8 if self.is_self else (self.x1 + self.x2) // 2


@dataclass(frozen=True)
class Drawing:
    width: int
    height: int
    lanes: list[tuple[int, str]]      # (centre x, title)
    arrows: list[Arrow]
    diagnosis: list[str]              # wrapped lines, drawn under the failed arrow
    diagnosis_y: int
    summary: str                      # for screen readers (<desc>)


@dataclass(frozen=True)
class _Message:
    source: int
    target: int
    status: Status
    label: str
    detail: str


def draw(result: FlowResult, *, method: str, path: str, iflow_path: str, cpi_role: str | None) -> Drawing:
    """Lay out this request's messages top to bottom, the diagnosis under the failed one."""
    messages, failed = _messages(result, method, path, iflow_path, cpi_role)
    diagnosis = _diagnosis(result) if failed is not None else []
    arrows, y, diagnosis_y = [], TOP, 0
    for index, message in enumerate(messages):
        arrows.append(Arrow(_x(message.source), _x(message.target), y, message.status,
                            message.label, message.detail))
        y += ROW
        if index == failed:
            diagnosis_y = y - ROW // 2 + DIAGNOSIS_LINE
            y += DIAGNOSIS_LINE * len(diagnosis) + 8
    return Drawing(width=2 * MARGIN_X + LANE_WIDTH * (len(LANES) - 1), height=y,
                   lanes=[(_x(i), title) for i, title in enumerate(LANES)], arrows=arrows,
                   diagnosis=diagnosis, diagnosis_y=diagnosis_y, summary=_summary(messages))


def _x(lane: int) -> int:
    return MARGIN_X + lane * LANE_WIDTH


def _messages(result: FlowResult, method: str, path: str, iflow_path: str,
              cpi_role: str | None) -> tuple[list[_Message], int | None]:
    steps, error = result.steps, result.error
    no_token = error is not None and error.code == "missing_token"
    exchange, role, iflow = steps["exchange"], steps["role"], steps["iflow"]
    exchange_status: Status = "cached" if exchange.outcome == "ok" and exchange.note == "cached" \
        else exchange.outcome
    messages = [
        _Message(BROWSER, GATEWAY, "ok", f"{method} {path}", "with the session cookie"),
        _Message(GATEWAY, APP, "failed" if no_token else "ok", "Authorization: Bearer <your token>",
                 "no token arrived" if no_token else "the session's token, forwarded"),
        _Message(APP, APP, steps["validate"].outcome, "validate your token", _took(steps["validate"].outcome,
                                                                                   steps["validate"].took_ms)),
        _Message(APP, XSUAA, exchange_status, "grant_type=jwt-bearer, assertion=<your token>",
                 "cached: not called" if exchange_status == "cached"
                 else _took(exchange.outcome, exchange.took_ms)),
        _Message(XSUAA, APP, exchange_status, "access token for CPI" if exchange.outcome != "failed"
                 else "refused", _answer_of_exchange(result)),
        _Message(APP, APP, role.outcome, f"CPI role {cpi_role} in scope?" if cpi_role else "CPI role check",
                 _role_detail(role.outcome, role.note)),
        _Message(APP, CPI, iflow.outcome, f"POST {iflow_path}",
                 _took(iflow.outcome, iflow.took_ms)),
        _Message(CPI, APP, iflow.outcome if result.iflow or iflow.outcome == "failed" else "skipped",
                 "answer", _answer_of_iflow(result)),
        _Message(APP, BROWSER, "ok" if error is None else "failed", "this page (through the gateway)",
                 f"HTTP {result.status}"),
    ]
    failed_step = {"validate": 2, "exchange": 4, "role": 5, "iflow": 7}
    failed = None
    if error is not None:
        failed = 1 if no_token else failed_step.get(error.step or "validate", 2)
    return messages, failed


def _took(outcome: str, took_ms: float) -> str:
    if outcome == "skipped":
        return "not called"
    return f"{outcome} · {took_ms:.1f} ms"


def _role_detail(outcome: str, note: str) -> str:
    if outcome == "skipped":
        return "not checked"
    if note.startswith("not checked"):
        return "not checked: none configured"
    return "present" if outcome == "ok" else "missing: CPI would answer 403"


def _answer_of_exchange(result: FlowResult) -> str:
    error = result.error
    if result.steps["exchange"].outcome == "skipped":
        return "not called"
    if error is not None and error.step == "exchange":
        server = getattr(error, "server_error", "")
        return f"HTTP {error.status}" + (f" · {server}" if server else "")
    return "aud: the CPI client"


def _answer_of_iflow(result: FlowResult) -> str:
    if result.iflow is not None:
        mpl = result.iflow.headers.get("sap_messageprocessinglogid")
        return f"HTTP {result.iflow.status}" + (f" · MPL {mpl}" if mpl else "")
    upstream = getattr(result.error, "upstream_status", None)
    if result.steps["iflow"].outcome == "failed":
        return f"HTTP {upstream}" if upstream else "no answer"
    return "not called"


def _diagnosis(result: FlowResult) -> list[str]:
    assert result.error is not None
    text = f"{result.error.cause}. Fix: {result.error.fix}" if result.error.fix else result.error.cause
    return textwrap.wrap(redact(text), DIAGNOSIS_CHARS)


def _summary(messages: list[_Message]) -> str:
    return "; ".join(f"{LANES[m.source]} to {LANES[m.target]}: {m.label}, {m.status}"
                     + (f" ({m.detail})" if m.detail else "") for m in messages)
