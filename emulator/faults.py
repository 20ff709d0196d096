"""Faults to inject per endpoint: latency, an HTTP status, an OAuth error, a malformed body.

A fault is queued for an endpoint name (``xsuaa.token``, ``xsuaa.keys``, ``ias.token``,
``ias.keys``, ``ias.discovery``, ``cpi.iflow``, ...) and applies to its next ``count``
requests (or all, with ``count`` 0). Set and cleared through the admin API.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from flask import Response, jsonify

__all__ = ["Fault", "Faults"]


@dataclass
class Fault:
    endpoint: str
    status: int = 0  # 0: answer normally (after the delay)
    delay: float = 0.0
    #: an OAuth error body {"error": ..., "error_description": ...}, or any JSON
    json: Any = None
    #: a raw body (malformed JSON, HTML), sent as is
    body: str | None = None
    content_type: str = "application/json"
    retry_after: int | None = None
    count: int = 1  # how many requests it applies to; 0 = until cleared
    used: int = field(default=0, compare=False)


class Faults:
    def __init__(self) -> None:
        self._faults: dict[str, list[Fault]] = {}
        self._lock = threading.Lock()

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.setdefault(fault.endpoint, []).append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def active(self) -> list[dict[str, Any]]:
        with self._lock:
            return [vars(f) for faults in self._faults.values() for f in faults]

    def apply(self, endpoint: str) -> Response | None:
        """Sleep and/or answer for ``endpoint`` if a fault is queued; None to go on normally."""
        fault = self._take(endpoint)
        if fault is None:
            return None
        if fault.delay:
            time.sleep(fault.delay)  # the injected latency itself
        if not fault.status:
            return None
        if fault.body is not None:
            response = Response(fault.body, status=fault.status, content_type=fault.content_type)
        else:
            response = jsonify(fault.json if fault.json is not None else {"error": "server_error"})
            response.status_code = fault.status
        if fault.retry_after is not None:
            response.headers["Retry-After"] = str(fault.retry_after)
        return response

    def _take(self, endpoint: str) -> Fault | None:
        with self._lock:
            queue = self._faults.get(endpoint)
            if not queue:
                return None
            fault = queue[0]
            fault.used += 1
            if fault.count and fault.used >= fault.count:
                queue.pop(0)
            return fault
