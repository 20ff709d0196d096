"""Coverage-guided fuzzing (atheris) of the token parser and validator; not run by pytest.

The property is the one of tests/unit/test_token_parser_fuzz.py: any input is refused with a
TokenError (or ScopeMissing), except the genuine tokens minted here; any other exception, or an
accepted input that was never issued, is a finding. The key endpoints are a stub: no network.

    .venv/bin/pip install atheris==3.0.0   # not in requirements-dev.txt: CI does not run this
    mkdir -p var/fuzz-corpus
    .venv/bin/python fuzz/fuzz_token_validator.py var/fuzz-corpus -max_total_time=600

The corpus folder is seeded with the genuine tokens on the first run.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root

with atheris.instrument_imports():
    from joserfc.jwk import RSAKey

    from seccore import ScopeMissing, SignatureInvalid, TokenError, TokenValidator
    from seccore.compact import parse_compact
    from tests import factories as f


class StubKeys:
    """The bound XSUAA zone's and IAS tenant's published keys, without fetching anything."""

    def __init__(self) -> None:
        self._keys = {name: RSAKey.import_key({k: v for k, v in f.public_jwk(name).items()
                                               if k in ("kty", "n", "e")}) for name in ("xsuaa", "ias")}

    def get_key(self, url: str, kid: str, headers: Any = None, tenant: str = "",
                pinned: bool = False) -> Any:
        if kid != f.KID:
            raise SignatureInvalid("unknown kid", step="validate")
        return self._keys["ias" if url == f.IAS_JWKS_URL else "xsuaa"]

    def jwks_uri_of(self, issuer: str, headers: Any = None, *, bound: bool = False) -> str:
        return f.IAS_JWKS_URL if issuer == f.IAS_ISSUER else f"{issuer}/unknown"


GENUINE = {f.sign(f.xsuaa_claims()), f.sign(f.ias_claims(), key="ias")}
VALIDATOR = TokenValidator(jwks=StubKeys(), xsuaa=f.xsuaa_binding(),  # type: ignore[arg-type]
                           ias=f.ias_binding(), required_scope="$XSAPPNAME.Display")


def test_one_input(data: bytes) -> None:
    token = data.decode("latin-1")
    with contextlib.suppress(TokenError):
        parse_compact(token)
    try:
        VALIDATOR.validate(token)
    except (TokenError, ScopeMissing):
        return
    if token not in GENUINE:
        raise AssertionError(f"accepted a token that was never issued: {token!r}")


def main() -> None:
    for token in GENUINE:
        assert VALIDATOR.validate(token).raw == token
    corpus = [Path(a) for a in sys.argv[1:] if not a.startswith("-")]
    for folder in corpus:
        if folder.is_dir() and not any(folder.iterdir()):
            for i, token in enumerate(sorted(GENUINE)):
                (folder / f"genuine-{i}").write_text(token)
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
