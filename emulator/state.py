"""Everything one emulator instance holds: its configuration, keys, token factory, faults."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from flask import current_app

from emulator.config import EmulatorConfig
from emulator.faults import Faults
from emulator.keys import KeyRing
from emulator.tokens import TokenFactory

__all__ = ["EmulatorState", "state"]


@dataclass
class EmulatorState:
    config: EmulatorConfig
    xsuaa_keys: KeyRing
    ias_keys: KeyRing
    tokens: TokenFactory
    faults: Faults = field(default_factory=Faults)
    #: the last requests per endpoint (method, path, grant type, status), for tests and demos
    requests: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=500))
    #: the services' own stores (authorization codes, login sessions, refresh tokens)
    store: dict[str, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def create(cls, config: EmulatorConfig) -> EmulatorState:
        xsuaa_keys, ias_keys = KeyRing("default-jwt-key"), KeyRing("ias-key")
        return cls(config=config, xsuaa_keys=xsuaa_keys, ias_keys=ias_keys,
                   tokens=TokenFactory(config, xsuaa_keys, ias_keys))


def state() -> EmulatorState:
    return current_app.extensions["emulator"]
