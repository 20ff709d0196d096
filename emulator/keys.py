"""Signing keys of the emulated IAS and XSUAA, with rotation.

Each service signs with its newest key and publishes every key still in its overlap
window, as a real tenant does during rotation. XSUAA's JWKS entries carry the PEM ``value``
that SAP's Python library reads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc.jwk import RSAKey

__all__ = ["KeyRing"]


@dataclass(frozen=True)
class _Key:
    kid: str
    key: RSAKey
    retired_at: float | None = None  # published until this time, no longer used to sign


class KeyRing:
    """The keys of one service: the newest signs, retired ones stay published for a while."""

    def __init__(self, prefix: str, *, clock: Callable[[], float] = time.time) -> None:
        self._prefix = prefix
        self._clock = clock
        self._lock = threading.Lock()
        self._serial = 0
        self._keys: list[_Key] = [self._new()]

    def _new(self) -> _Key:
        self._serial += 1
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return _Key(kid=f"{self._prefix}-{self._serial}", key=RSAKey.import_key(private))

    @property
    def signing(self) -> tuple[str, RSAKey]:
        current = self._keys[-1]
        return current.kid, current.key

    def rotate(self, overlap_seconds: float = 300.0) -> str:
        """Sign with a new key from now on; keep the old ones published for ``overlap_seconds``."""
        with self._lock:
            until = self._clock() + overlap_seconds
            self._keys = [_Key(k.kid, k.key, k.retired_at if k.retired_at is not None else until)
                          for k in self._keys] + [self._new()]
            return self._keys[-1].kid

    def jwks(self, *, with_pem: bool = False) -> dict[str, Any]:
        now = self._clock()
        keys = []
        for entry in self._keys:
            if entry.retired_at is not None and entry.retired_at <= now:
                continue
            jwk = entry.key.as_dict(private=False)
            jwk.update(kid=entry.kid, use="sig", alg="RS256")
            if with_pem:
                jwk["value"] = entry.key.as_pem(private=False).decode()
            keys.append(jwk)
        return {"keys": keys}

    def public_pem(self) -> str:
        return self._keys[-1].key.raw_value.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
