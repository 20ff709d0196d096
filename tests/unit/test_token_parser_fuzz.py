"""Property tests (hypothesis) of the token parser and validator: whatever arrives as a bearer
token, ``seccore.compact.parse_compact`` and ``TokenValidator.validate`` either hand back the
genuine token or raise a ``TokenError`` (401); no other exception, and no modified token accepted.
Two outcomes besides TokenError are part of the policy and allowed where they apply: ScopeMissing
(403) for a validly signed XSUAA token without the app's scope, and KeysUnavailable (503) for a
token naming another tenant of the bound IAS domain whose keys cannot be fetched (OTHER_TENANT).

The inputs: arbitrary text and bytes, three dot-separated base64url-ish segments, mutations of
one genuine token (bit flips, segment swaps, truncation, padding, Unicode), and arbitrary JSON
headers and payloads that are properly signed with the bound key (for those, acceptance is
allowed, but only when the claims meet the policy: the test checks the accepted token itself).

The default profile is short and derandomized, so CI always runs the same examples. For a long,
random run::

    TOKEN_FUZZ_PROFILE=long .venv/bin/pytest -q tests/unit/test_token_parser_fuzz.py

(20 000 examples per test; ``TOKEN_FUZZ_EXAMPLES=N`` overrides the count of either profile).
A failure prints the falsifying example and a ``@reproduce_failure`` blob.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import responses
from hypothesis import HealthCheck, assume, event, example, given, settings
from hypothesis import strategies as st

from seccore import KeysUnavailable, ScopeMissing, TokenError, TokenValidator, ValidatedToken
from seccore.compact import (
    ACCEPTED_TYP,
    ALGORITHMS,
    MAX_TOKEN_BYTES,
    REFUSED_HEADERS,
    parse_compact,
    unverified_parts,
)
from seccore.validation import LEEWAY_SECONDS
from tests import factories as f
from tests.unit.test_jwt_catalogue import DISCOVERY_URL, TRUSTED_URLS, make_validator

_PROFILES = {
    "ci": settings(max_examples=250, derandomize=True, database=None, deadline=timedelta(seconds=1),
                   print_blob=True, suppress_health_check=[HealthCheck.too_slow]),
    "long": settings(max_examples=20_000, derandomize=False, database=None, deadline=timedelta(seconds=1),
                     print_blob=True, suppress_health_check=[HealthCheck.too_slow]),
}
FUZZ = settings(_PROFILES[os.environ.get("TOKEN_FUZZ_PROFILE", "ci")],
                **({"max_examples": int(n)} if (n := os.environ.get("TOKEN_FUZZ_EXAMPLES")) else {}))

#: The genuine tokens are minted for this instant and the validator's clock stands still at it,
#: so that every run sees the same tokens and the derandomized examples are the same too.
NOW = 1_790_000_000
REQUIRED_SCOPE = f"{f.XSAPPNAME}.Display"
B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
#: Another tenant under the bound IAS domain: the policy lets its discovery document be fetched
#: (one label, at most one new tenant per cooldown); here it is not served, so its keys are
#: unavailable (503). A forged token can name one, so that outcome is allowed for such issuers.
OTHER_TENANT = re.compile(rf"https://[a-z0-9-]{{1,63}}\.{re.escape(f.IAS_DOMAIN)}/?")
#: Characters an attacker or a broken client puts into a token besides base64url.
ODD = "=.+/ \t\r\n\x00\u00a0\u00e9\u2028\ufeff\U0001f600"


def _claims(kind: str, **changes: Any) -> dict[str, Any]:
    times = {"iat": NOW - 30, "exp": NOW + 3600, "auth_time": NOW - 60}
    if kind == "xsuaa":
        return f.xsuaa_claims(**{**times, **changes})
    return f.ias_claims(**{**times, **changes})


def _genuine(kind: str = "xsuaa", **changes: Any) -> str:
    return f.sign(_claims(kind, **changes), key="xsuaa" if kind == "xsuaa" else "ias")


GENUINE = {kind: _genuine(kind) for kind in ("xsuaa", "ias")}
#: Another genuine token, for signatures that are valid, but for other bytes.
OTHER = _genuine(jti="0" * 32)


@pytest.fixture(scope="module")
def key_endpoints() -> Iterator[responses.RequestsMock]:
    """The bound XSUAA zone's and IAS tenant's key endpoints; other URLs are not served."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.get(f.XSUAA_JWKS_URL, json=f.jwks(f.public_jwk()))
        rsps.get(DISCOVERY_URL, json={"issuer": f.IAS_ISSUER, "jwks_uri": f.IAS_JWKS_URL})
        rsps.get(f.IAS_JWKS_URL, json=f.jwks(f.public_jwk("ias")))
        yield rsps
        fetched = {call.request.url for call in rsps.calls}
        untrusted = {url for url in fetched if url not in TRUSTED_URLS and not OTHER_TENANT.fullmatch(
            url.removesuffix("/.well-known/openid-configuration"))}
        assert not untrusted, f"fetched a URL not derived from the bindings: {untrusted}"


@pytest.fixture(scope="module")
def validator(key_endpoints: responses.RequestsMock) -> TokenValidator:
    validator = make_validator(f.FakeClock(NOW))
    for token in GENUINE.values():  # the controls: both genuine tokens pass
        assert validator.validate(token).raw == token
    return validator


def outcome(validator: TokenValidator, token: str) -> ValidatedToken | TokenError | KeysUnavailable:
    """The validated token or the TokenError (or KeysUnavailable for another tenant of the bound
    IAS domain, see OTHER_TENANT); any other exception escapes and fails the test."""
    try:
        return validator.validate(token)
    except TokenError as exc:
        assert exc.status == 401 and exc.step == "validate", repr(exc)
        return exc
    except KeysUnavailable as exc:
        claims = unverified_parts(token)[1]
        issuer = claims.get("ias_iss") or claims.get("iss")
        assert OTHER_TENANT.fullmatch(issuer) and issuer.rstrip("/") != f.IAS_ISSUER, (issuer, exc)
        return exc


# --------------------------------------------------------------------------------------------------
# Strategies
# --------------------------------------------------------------------------------------------------

def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=10)
ascii_b64ish = st.text(alphabet=B64URL + ODD, max_size=64)
segments = st.one_of(ascii_b64ish, st.binary(max_size=96).map(b64),
                     json_values.map(lambda v: b64(json.dumps(v).encode())),
                     st.sampled_from(GENUINE["xsuaa"].split(".")))
three_segments = st.tuples(segments, segments, segments).map(".".join)
#: A token-ish string of n dot-separated parts, n not 3.
other_segments = st.lists(segments, min_size=0, max_size=6).filter(lambda s: len(s) != 3).map(".".join)

HEADER_NAMES = ("alg", "kid", "typ", "crit", "b64", "zip", "jku", "x5u", "jwk", "x5c", "x5t", "cty",
                "private")
CLAIM_NAMES = ("exp", "iat", "nbf", "iss", "ias_iss", "sub", "aud", "zid", "cid", "client_id", "azp",
               "scope", "ext_attr", "origin", "grant_type", "app_tid", "sap_id_type", "events", "jti")
#: Values that are near what the validator checks for, besides arbitrary JSON.
NEAR_VALUES = st.sampled_from([
    "RS256", "rs256", "none", "HS256", "ES256", f.KID, "", "JWT", "at+jwt", "logout+jwt", [f.KID],
    NOW, NOW + 3600, NOW - 3600, str(NOW + 3600), float(NOW), 2**53, -(2**63), 10**400, True,
    f.ZONE_ID, f.XSUAA_CLIENT_ID, f.XSAPPNAME, REQUIRED_SCOPE, [REQUIRED_SCOPE], f.IAS_CLIENT_ID,
    [f.IAS_CLIENT_ID], f.IAS_ISSUER, f.IAS_ISSUER + "/", "https://other.accounts.ondemand.com",
    {"enhancer": "XSUAA"}, "client_credentials", "sap.default", "app", "user",
])
header_overrides = st.just({}) | st.dictionaries(st.sampled_from(HEADER_NAMES), NEAR_VALUES | json_values,
                                                 max_size=2)
claim_overrides = st.dictionaries(st.sampled_from(CLAIM_NAMES) | st.text(max_size=6),
                                  NEAR_VALUES | json_values, max_size=4)


@st.composite
def signed_json(draw: st.DrawFn) -> tuple[str, str]:
    """(kind, token): a header and payload of arbitrary JSON near a real token's, signed with the
    bound key of that kind under its published kid."""
    kind = draw(st.sampled_from(["xsuaa", "ias"]))
    header: Any = {"alg": "RS256", "kid": f.KID, "typ": "JWT", **draw(header_overrides)}
    payload: Any = {**_claims(kind), **draw(claim_overrides)}
    drop = draw(st.sets(st.sampled_from(("exp", "iat", "iss", "sub", "zid", "aud", "scope", "kid")),
                        max_size=2))
    for name in drop:
        header.pop(name, None)
        payload.pop(name, None)
    if draw(st.integers(0, 9)) == 0:  # now and then, no JSON object at all
        header = draw(st.just(header) | json_values)
        payload = draw(st.just(payload) | json_values)
    key = "xsuaa" if kind == "xsuaa" else "ias"
    return kind, f.sign_raw(json.dumps(header), json.dumps(payload), key=key)


def _replace_char(token: str, draw: st.DrawFn) -> str:
    i = draw(st.integers(0, len(token) - 1))
    return token[:i] + draw(st.sampled_from(B64URL + ODD)) + token[i + 1:]


def _flip_decoded_bit(token: str, draw: st.DrawFn) -> str:
    parts = token.split(".")
    which = draw(st.integers(0, len(parts) - 1))
    try:
        raw = bytearray(base64.urlsafe_b64decode(parts[which] + "=" * (-len(parts[which]) % 4)))
    except ValueError:
        return token
    if not raw:
        return token
    bit = draw(st.integers(0, len(raw) * 8 - 1))
    raw[bit // 8] ^= 1 << (bit % 8)
    parts[which] = b64(bytes(raw))
    return ".".join(parts)


def _swap_segments(token: str, draw: st.DrawFn) -> str:
    parts = token.split(".")
    other = OTHER.split(".")
    choice = draw(st.sampled_from(["permute", "foreign", "duplicate"]))
    if choice == "permute":
        return ".".join(draw(st.permutations(parts)))
    if choice == "foreign":  # a segment of another genuine token, e.g. its valid signature
        i = draw(st.integers(0, min(len(parts), 3) - 1))
        return ".".join(other[i] if j == i else p for j, p in enumerate(parts))
    i, j = draw(st.permutations(range(len(parts))))[:2] if len(parts) > 1 else (0, 0)
    parts[i] = parts[j]
    return ".".join(parts)


def _truncate(token: str, draw: st.DrawFn) -> str:
    """Cut off the end, or cut a piece out of the middle (at least one character either way)."""
    start = draw(st.integers(0, len(token) - 1))
    end = draw(st.integers(start + 1, len(token))) if draw(st.booleans()) else len(token)
    return token[:start] + token[end:]


def _insert(token: str, draw: st.DrawFn) -> str:
    i = draw(st.integers(0, len(token)))
    text = draw(st.sampled_from(["=", "==", ".", "..", " ", "\n", "\u00a0", "\u00e9", "\ufeff", "\u0130"])
                | st.text(max_size=4))
    return token[:i] + text + token[i:]


def _recase(token: str, draw: st.DrawFn) -> str:
    letters = [i for i, c in enumerate(token) if c.swapcase() != c]
    if not letters:
        return token
    i = draw(st.sampled_from(letters))
    return token[:i] + token[i].swapcase() + token[i + 1:]


def _std_alphabet(token: str, _draw: st.DrawFn) -> str:
    return token.replace("-", "+").replace("_", "/")


MUTATIONS = (_replace_char, _flip_decoded_bit, _swap_segments, _truncate, _insert, _recase, _std_alphabet)


@st.composite
def mutated(draw: st.DrawFn) -> str:
    """One to three mutations of a genuine token."""
    token = GENUINE[draw(st.sampled_from(sorted(GENUINE)))]
    for mutation in draw(st.lists(st.sampled_from(MUTATIONS), min_size=1, max_size=3)):
        if token:
            token = mutation(token, draw)
    return token


# --------------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------------

@FUZZ
@given(token=st.one_of(st.text(), st.binary().map(lambda b: b.decode("latin-1")), three_segments,
                       other_segments))
@example(token="..")
@example(token="e30.e30.")
@example(token="a" * (MAX_TOKEN_BYTES + 1))
def test_parser_returns_a_checked_header_or_raises_token_error(token: str) -> None:
    try:
        compact = parse_compact(token)
    except TokenError as exc:
        assert exc.status == 401 and exc.step == "validate"
        return
    header_segment, payload_segment, signature_segment = token.split(".")
    assert compact.header["alg"] in ALGORITHMS
    assert compact.kid == compact.header["kid"] and isinstance(compact.kid, str)
    assert 0 < len(compact.kid) <= 256
    assert not any(name in compact.header for name in REFUSED_HEADERS)
    assert str(compact.header.get("typ", "")).lower() in ACCEPTED_TYP
    assert compact.signing_input == f"{header_segment}.{payload_segment}".encode()
    assert compact.signature_segment == signature_segment.encode()
    assert b64(compact.payload) == payload_segment  # canonical base64url only


@FUZZ
@given(token=st.one_of(st.text(), st.binary().map(lambda b: b.decode("latin-1")), three_segments,
                       other_segments))
def test_arbitrary_input_is_refused_with_a_token_error(validator: TokenValidator, token: str) -> None:
    result = outcome(validator, token)
    assert not isinstance(result, ValidatedToken), f"accepted an arbitrary input: {token!r}"


@FUZZ
@given(token=mutated())
def test_a_modified_token_is_never_accepted(validator: TokenValidator, token: str) -> None:
    assume(token not in GENUINE.values() and token != OTHER)  # e.g. every segment taken from OTHER
    result = outcome(validator, token)
    event(type(result).__name__)
    assert not isinstance(result, ValidatedToken), f"accepted a modified token: {token!r}"
    for part in {token, *token.split(".")}:
        if len(part) >= 16:
            assert part not in json.dumps(result.to_dict()), "the diagnosis contains the token"


@FUZZ
@given(case=signed_json())
def test_signed_arbitrary_json_is_accepted_only_within_the_policy(validator: TokenValidator,
                                                                  case: tuple[str, str]) -> None:
    kind, token = case
    try:
        result = outcome(validator, token)
    except ScopeMissing as exc:  # 403: a valid XSUAA token without the app's scope
        event("ScopeMissing")
        assert exc.status == 403 and kind == "xsuaa"
        return
    event(f"{kind} {type(result).__name__}")
    if not isinstance(result, ValidatedToken):
        return
    # Accepted: then the token must meet every rule of the policy on its own.
    assert result.raw == token and result.kind == kind
    header, claims = dict(result.header), result.claims
    assert header["alg"] == "RS256" and header["kid"] == f.KID
    assert not any(name in header for name in REFUSED_HEADERS)
    assert str(header.get("typ", "")).lower() in ACCEPTED_TYP
    for name in ("exp", "iat"):
        assert type(claims[name]) in (int, float), claims[name]
    assert claims["exp"] > NOW - LEEWAY_SECONDS and claims["iat"] <= NOW + LEEWAY_SECONDS
    assert claims.get("nbf", 0) <= NOW + LEEWAY_SECONDS
    assert isinstance(claims["iss"], str) and isinstance(claims["sub"], str)
    assert claims.get("grant_type") != "client_credentials"
    if kind == "xsuaa":
        assert claims["zid"] == f.ZONE_ID and "origin" in claims
        assert REQUIRED_SCOPE in ([claims["scope"]] if isinstance(claims["scope"], str) else claims["scope"])
    else:
        aud = claims["aud"]
        assert f.IAS_CLIENT_ID in ([aud] if isinstance(aud, str) else aud)
        assert (claims.get("ias_iss") or claims["iss"]).rstrip("/") == f.IAS_ISSUER
        assert claims.get("sap_id_type") != "app" and "events" not in claims
