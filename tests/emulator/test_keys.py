"""IDP-07: key rotation with an overlap window, as a real tenant rotates."""

from __future__ import annotations

from emulator.keys import KeyRing
from tests.factories import FakeClock


def kids(ring: KeyRing) -> list[str]:
    return [k["kid"] for k in ring.jwks()["keys"]]


def test_a_rotated_key_signs_at_once_and_the_old_one_is_retired_after_the_overlap() -> None:
    clock = FakeClock(1_000_000.0)
    ring = KeyRing("key", clock=clock)
    old_kid, _ = ring.signing
    new_kid = ring.rotate(overlap_seconds=300)
    assert ring.signing[0] == new_kid != old_kid
    assert kids(ring) == [old_kid, new_kid]  # both published during the overlap
    clock.advance(299)
    assert kids(ring) == [old_kid, new_kid]
    clock.advance(1)
    assert kids(ring) == [new_kid]  # retired


def test_xsuaa_keys_carry_the_pem_value_sap_libraries_read() -> None:
    entry = KeyRing("key").jwks(with_pem=True)["keys"][0]
    assert entry["value"].startswith("-----BEGIN PUBLIC KEY-----")
    assert {"kty", "kid", "n", "e", "alg", "use"} <= set(entry) and "d" not in entry
