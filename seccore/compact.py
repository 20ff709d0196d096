"""The JWS Compact Serialization of a user token (RFC 7515 §7.1), read with joserfc's parts.

A token is three base64url segments: header, payload, signature. The segments are decoded
with joserfc's strict base64url decoder (canonical encodings only, no padding), the header
is checked by joserfc's JWS header registry (parameter types, ``crit``), and the signature is
verified by joserfc's RS256 algorithm. JSON is read by orjson (UTF-8 only, no NaN, nesting
up to 1024). Only the split into segments and a cache of checked headers are this
project's own: joserfc's one-call ``extract_compact`` + ``validate_compact`` cost more than
the RSA verify itself, and a token issuer reuses one header for all its tokens
(bench/README.md has the numbers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from joserfc.errors import JoseError
from joserfc.jws import JWSRegistry
from joserfc.util import urlsafe_b64decode

from seccore.errors import SignatureInvalid, TokenKindRejected, TokenMalformed

__all__ = ["ALGORITHMS", "MAX_TOKEN_BYTES", "CompactToken", "parse_compact", "unverified_parts"]

ALGORITHMS = ("RS256",)
#: Larger than any real BTP token; gunicorn.conf.py lets a header line twice this size through.
MAX_TOKEN_BYTES = 8192
#: Header ``typ`` values of access and ID tokens; anything else (logout+jwt, …) is refused.
ACCEPTED_TYP = frozenset({"", "jwt", "at+jwt"})
#: Header parameters that change how a JWS is processed; none is supported.
REFUSED_HEADERS = ("crit", "b64", "zip")
HEADER_CACHE_SIZE = 256

_REGISTRY = JWSRegistry(algorithms=list(ALGORITHMS))
_RS256 = _REGISTRY.get_alg("RS256")
_headers: dict[bytes, dict[str, Any]] = {}


@dataclass(frozen=True, slots=True)
class CompactToken:
    header: dict[str, Any]
    kid: str
    payload: bytes
    signing_input: bytes
    signature_segment: bytes

    def check_signature(self, key: Any) -> None:
        """RS256 (RFC 7518 §3.3) over the segments as received; raise SignatureInvalid."""
        try:
            valid = _RS256.verify(self.signing_input, urlsafe_b64decode(self.signature_segment), key)
        except (JoseError, ValueError, TypeError) as exc:
            raise SignatureInvalid("the token's signature is not readable", step="validate") from exc
        if not valid:
            raise SignatureInvalid("the token's signature does not verify", step="validate")


def parse_compact(token: str) -> CompactToken:
    """Split and decode ``token``; raise TokenMalformed / TokenKindRejected. Nothing is trusted yet."""
    if len(token) > MAX_TOKEN_BYTES:
        raise TokenMalformed(f"the token is larger than {MAX_TOKEN_BYTES} bytes", step="validate")
    try:
        raw = token.encode("ascii")
        header_segment, payload_segment, signature_segment = raw.split(b".")
        header = _headers.get(header_segment) or _checked_header(header_segment)
        payload = urlsafe_b64decode(payload_segment)
    except (UnicodeError, ValueError, TypeError, JoseError) as exc:
        raise TokenMalformed("the token is not a well-formed signed JWT (three base64url parts)",
                             step="validate") from exc
    return CompactToken(header=header, kid=header["kid"], payload=payload,
                        signing_input=raw[: len(header_segment) + 1 + len(payload_segment)],
                        signature_segment=signature_segment)


def unverified_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of a token that arrived straight from a token endpoint over verified
    TLS, read without checking its signature (its consumer checks it); ValueError if no JWT."""
    try:
        header, payload = token.encode("ascii").split(b".")[:2]
        parts = orjson.loads(urlsafe_b64decode(header)), orjson.loads(urlsafe_b64decode(payload))
    except (UnicodeError, ValueError, TypeError, JoseError) as exc:
        raise ValueError("not a JWT") from exc
    if not all(isinstance(part, dict) for part in parts):
        raise ValueError("not a JWT")
    return parts


def _checked_header(segment: bytes) -> dict[str, Any]:
    try:
        header = orjson.loads(urlsafe_b64decode(segment))
    except ValueError as exc:
        raise TokenMalformed("the token's header is not base64url JSON", step="validate") from exc
    if not isinstance(header, dict):
        raise TokenMalformed("the token's header is not a JSON object", step="validate")
    alg = header.get("alg")
    if alg not in ALGORITHMS:
        raise TokenMalformed(f"the token's algorithm {str(alg)[:16]!r} is not accepted; only RS256",
                             step="validate")
    if any(name in header for name in REFUSED_HEADERS):
        raise TokenMalformed("the token's header asks for an unsupported JWS extension (crit/b64/zip)",
                             step="validate")
    try:
        _REGISTRY.check_header(header)  # joserfc: types of the registered parameters
    except JoseError as exc:
        raise TokenMalformed(f"the token's header is not acceptable: {exc.error}", step="validate") from exc
    typ = header.get("typ", "")
    if not isinstance(typ, str) or typ.lower() not in ACCEPTED_TYP:
        raise TokenKindRejected(f"the token's type {str(typ)[:32]!r} is not an access or ID token",
                                step="validate")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid or len(kid) > 256:
        raise TokenMalformed("the token header has no key id (kid)", step="validate")
    if len(_headers) >= HEADER_CACHE_SIZE:  # forged headers must not grow the cache
        _headers.pop(next(iter(_headers)), None)
    _headers[segment] = header
    return header
