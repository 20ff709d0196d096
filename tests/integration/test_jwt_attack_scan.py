"""A JWT attack scan of the app under gunicorn with MyJWT, a public JWT attack tool.

Tool: MyJWT 2.1.0 (PyPI ``myjwt``, MIT, github.com/mBouamama/MyJWT), pinned in
requirements-dev.txt together with the imports its wheel forgets to declare. Checked and not
usable here: ticarpi's jwt_tool (the catalogue's JWT_TOOL reference) is on no registry this
project reaches (no ``jwt-tool``/``jwt_tool``/``python-jwt-tool`` on PyPI, no ``jwt_tool`` on npm,
no Debian package); jwtXploiter 1.2.1 (PyPI) does not start with the pinned cryptography 50.x (it
imports private ``cryptography.hazmat.backends.openssl`` classes that are gone); ``jwt-cracker``
(npm) only brute-forces the HS256-512 secret of a token, and this app's issuers sign with RS256;
``jwt-hack``, ``jwtcrack`` and ``c-jwt-cracker`` are on none of PyPI, npm and Debian.

MyJWT makes the forged tokens from one genuine user token (minted as test_app_under_gunicorn.py
does): its CLI runs in a subprocess, and the token is read from what it prints (``new JWT:
...``), never inferred from its exit code. The test sends each token to ``GET /homepage`` on
loopback and expects 401 with the bearer challenge, no token exchange, no iFlow call, no fetch
of a URL the token names, no command run from a kid, and no part of the token in the log. Two
controls prove that the scan reaches the app: the genuine token, and a token that MyJWT signed
with the issuer's own key (through its ``--jku`` mode), both get 200. The module runs an app and
stand-ins of its own (conftest's ``app_environ``, ``running_gunicorn``, ``Upstream``): its
forged kids make the app refetch keys, which the session's stand-ins must not count.

MyJWT's modes: alg none (``--none-vulnerability``), RS/HS key confusion with a public key file
(``--hmac``), HMAC signing with a given secret (``--sign``; with the empty secret through
``--kid``, which signs with ""), kid injection (``--kid``), jku and x5u injection (``--jku`` /
``--x5u``: it copies the key set the token names, puts its own key or certificate in and writes
it to its working folder, which a loopback server of the test serves as the attacker's host),
header and claim changes (``-h``/``-p``/``--full-payload``). Its cracking modes (``--bruteforce``,
``--crack``) recover the secret of an HMAC-signed token: not applicable, as no issuer of this
app signs with HMAC; forging with weak secrets (JWT-07) is the server's half, and is scanned.
Its own sender (``-u``) puts the token in a bearer header only for POST, hence the test's GET.

jwt_tool modes that MyJWT lacks are applied to MyJWT's output and marked "test:" in their ids:
the empty and the null signature (jwt_tool -X n), ES256 psychic signatures (CVE-2022-21449) and
an embedded ``jwk`` header (jwt_tool -X i). Each id starts with the catalogue row it scans
(``../shared/reference/security-catalogue.md``, JWT-xx); tests/unit/test_jwt_catalogue.py has the
same rows against the validator alone.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from tests import factories
from tests.integration.conftest import app_environ, running_upstream
from tests.integration.processes import RunningApp, clean_environ, free_port, running_gunicorn
from tests.integration.servers import IFLOW_PATH, TOKEN_PATH, Pki, Upstream
from tests.integration.test_app_under_gunicorn import homepage, user_token

pytestmark = pytest.mark.integration

MYJWT = (sys.executable, "-m", "myjwt.myjwt_cli")
TOOL_TIMEOUT_S = 60
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_NEW_JWT = re.compile(r"^new JWT: ([A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*)$", re.MULTILINE)
CHALLENGE = 'Bearer realm="frontapp", error="invalid_token"'
OTHER_ZONE = "0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e"
#: HMAC secrets an attacker tries first (jwt_tool's jwt-common.txt head), plus the binding's own
#: client secrets: a leaked client secret must not sign user tokens either.
WEAK_SECRETS = ("secret", "password", "your-256-bit-secret", "changeme", "jwt", "xs-secret",
                factories.CPI_SECRET)


class AttackerHost:
    """The attacker's web server on loopback (plain HTTP): serves ``folder``, where MyJWT writes
    the key sets its jku/x5u tokens point to, and records every request path."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.requests: list[str] = []
        handler = partial(_RecordingHandler, directory=str(folder))
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.requests = self.requests  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, name="attacker-http",
                                        daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def __enter__(self) -> AttackerHost:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class _RecordingHandler(SimpleHTTPRequestHandler):
    def do_GET(self) -> None:
        self.server.requests.append(self.path)  # type: ignore[attr-defined]
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass(frozen=True)
class Kit:
    """What the attacks are made from: the genuine token and the attacker's files and host."""

    genuine: str
    attacker: AttackerHost
    public_pem: Path  # the issuer's public key as the JWKS publishes it ("value": SPKI PEM)
    public_pkcs1: Path
    issuer_key: Path  # the issuer's private key: for the positive control only

    @property
    def folder(self) -> Path:
        return self.attacker.folder


def myjwt(kit: Kit, *args: str) -> str:
    """Run MyJWT's CLI on the genuine token with ``args``; the last token it printed."""
    # MyJWT copies every token to the clipboard: without a display it cannot, and says so.
    env = {k: v for k, v in clean_environ().items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    done = subprocess.run(  # noqa: S603 - a fixed argv of this interpreter
        [*MYJWT, kit.genuine, *args], cwd=kit.folder, env=env, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, check=False)
    tokens = _NEW_JWT.findall(_ANSI.sub("", done.stdout))
    assert tokens, f"myjwt {' '.join(args)} printed no token (exit {done.returncode}):\n" \
                   f"{done.stdout}\n{done.stderr}"
    return tokens[-1]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def strip_signature(token: str) -> str:
    return token.rsplit(".", 1)[0] + "."


def null_signature(token: str) -> str:
    return token.rsplit(".", 1)[0] + "." + b64(bytes(256))


def psychic_signature(der: bool) -> Callable[[str], str]:
    """ES256 r=s=0 (CVE-2022-21449), as 64 zero bytes (JWS) or as DER."""
    signature = bytes.fromhex("3006020100020100") if der else bytes(64)
    return lambda token: token.rsplit(".", 1)[0] + "." + b64(signature)


@dataclass(frozen=True)
class Attack:
    #: MyJWT's options, made from the kit
    args: Callable[[Kit], Sequence[str]]
    #: a change MyJWT cannot make itself, applied to its output (marked "test:" in the id)
    then: Callable[[str], str] | None = None
    #: files whose creation would prove that a kid was executed as a command
    markers: tuple[str, ...] = ()

    def forge(self, kit: Kit) -> str:
        token = myjwt(kit, *self.args(kit))
        return self.then(token) if self.then else token


def attack(rid: str, args: Callable[[Kit], Sequence[str]], **kw: Any) -> Any:
    return pytest.param(Attack(args, **kw), id=rid)


def embedded_jwk(token: str) -> str:
    """jwt_tool -X i: the claims signed with the attacker's key, its public JWK in the header."""
    return factories.sign(_payload(token), key="attacker",
                          headers={"jwk": factories.public_jwk("attacker"), "typ": "JWT"})


def _payload(token: str) -> dict[str, Any]:
    return _segment(token, 1)


def _segment(token: str, index: int) -> dict[str, Any]:
    part = token.split(".")[index]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def _tampered_scopes(kit: Kit) -> str:
    claims = _payload(kit.genuine)
    claims["scope"] = [*claims["scope"], f"{factories.XSAPPNAME}.Admin"]
    return json.dumps(claims)


def _pem(kit: Kit) -> str:
    return kit.public_pem.read_text()


ATTACKS = [
    # JWT-01 alg none, in MyJWT's mode and in the case variants jwt_tool -X a tries
    attack("JWT-01 myjwt --none-vulnerability", lambda k: ["--none-vulnerability"]),
    attack("JWT-01 myjwt --none-vulnerability, sub tampered",
           lambda k: ["-p", "sub=admin", "--none-vulnerability"]),
    *[attack(f"JWT-01 myjwt -h alg={alg}, signature kept", lambda k, alg=alg: ["-h", f"alg={alg}"])
      for alg in ("none", "None", "NONE", "nOnE")],
    *[attack(f"JWT-01 myjwt -h alg={alg}, test: signature stripped", lambda k, alg=alg: ["-h", f"alg={alg}"],
             then=strip_signature) for alg in ("None", "NONE", "nOnE")],
    # JWT-02 signature stripping (jwt_tool -X n; MyJWT passes the token through, the test strips)
    attack("JWT-02 myjwt pass-through, test: empty signature", lambda k: ["-h", "typ=JWT"],
           then=strip_signature),
    attack("JWT-02 myjwt pass-through, test: null signature", lambda k: ["-h", "typ=JWT"],
           then=null_signature),
    # JWT-03 claims edited, signature kept
    attack("JWT-03 myjwt -p sub=admin", lambda k: ["-p", "sub=admin"]),
    attack("JWT-03 myjwt -p user_name=admin@example.com", lambda k: ["-p", "user_name=admin@example.com"]),
    attack("JWT-03 myjwt -p zid=<other zone>", lambda k: ["-p", f"zid={OTHER_ZONE}"]),
    attack("JWT-03 myjwt --full-payload with an Admin scope added",
           lambda k: ["--full-payload", _tampered_scopes(k)]),
    # JWT-04 RS256 -> HS* keyed with the issuer's public key
    attack("JWT-04 myjwt --hmac <public key, SPKI PEM>", lambda k: ["--hmac", str(k.public_pem)]),
    attack("JWT-04 myjwt --hmac <public key, PKCS#1 PEM>", lambda k: ["--hmac", str(k.public_pkcs1)]),
    attack("JWT-04 myjwt --hmac <public key>, sub tampered",
           lambda k: ["-p", "sub=admin", "--hmac", str(k.public_pem)]),
    *[attack(f"JWT-04 myjwt -h alg={alg} --sign <public key PEM>",
             lambda k, alg=alg: ["-h", f"alg={alg}", "--sign", _pem(k)]) for alg in ("HS384", "HS512")],
    # JWT-05 HS256 keyed with the published JWK / JWKS (CVE-2026-48526)
    attack("JWT-05 myjwt -h alg=HS256 --sign <published JWK JSON>",
           lambda k: ["-h", "alg=HS256", "--sign", json.dumps(factories.public_jwk())]),
    attack("JWT-05 myjwt -h alg=HS256 --sign <published JWKS JSON>",
           lambda k: ["-h", "alg=HS256", "--sign", json.dumps(factories.jwks())]),
    # JWT-07 blank and weak HMAC secrets (MyJWT's --kid signs with the empty secret)
    attack("JWT-07 myjwt -h alg=HS256 --kid <same kid> (blank secret)",
           lambda k: ["-h", "alg=HS256", "--kid", factories.KID]),
    *[attack(f"JWT-07 myjwt -h alg=HS256 --sign {secret!r}",
             lambda k, secret=secret: ["-h", "alg=HS256", "--sign", secret]) for secret in WEAK_SECRETS],
    # JWT-08 embedded jwk (jwt_tool -X i)
    attack("JWT-08 myjwt pass-through, test: signed by the attacker, its jwk in the header",
           lambda k: ["-h", "typ=JWT"], then=embedded_jwk),
    # JWT-09 jku injection: MyJWT copies the key set the token's jku names (the attacker's copy of
    # the published one), puts its own key in, writes it to the folder AttackerHost serves, signs.
    attack("JWT-09 myjwt --jku <attacker host>, same kid",
           lambda k: ["-h", f"jku={k.attacker.url}/jwks.json", "--jku", k.attacker.url, "--file", "jku-1"]),
    attack("JWT-09 myjwt --jku <attacker host>, attacker kid",
           lambda k: ["-h", f"jku={k.attacker.url}/jwks-attacker-kid.json", "--jku", k.attacker.url,
                      "--file", "jku-2", "-h", "kid=attacker-1"]),
    # JWT-10 x5u injection: a self-signed certificate of MyJWT's key in the x5u key set
    attack("JWT-10 myjwt --x5u <attacker host>",
           lambda k: ["-h", f"x5u={k.attacker.url}/jwks.json", "--x5u", k.attacker.url, "--file", "x5u-1"]),
    # JWT-11 kid path traversal (jwt_tool playbook: /dev/null with the empty key, a file with "2")
    attack("JWT-11 myjwt -h alg=HS256 --kid ../../../../../../dev/null",
           lambda k: ["-h", "alg=HS256", "--kid", "../../../../../../dev/null"]),
    attack("JWT-11 myjwt -h alg=HS256 --kid /proc/sys/kernel/randomize_va_space --sign 2",
           lambda k: ["-h", "alg=HS256", "--kid", "/proc/sys/kernel/randomize_va_space", "--sign", "2"]),
    attack("JWT-11 myjwt -h kid=../../../../../../dev/null, RS256 signature kept",
           lambda k: ["-h", "kid=../../../../../../dev/null"]),
    # JWT-12 kid injection: SQL, shell, template; the shell probes would leave a file behind
    attack("JWT-12 myjwt --kid SQL injection, key '1'",
           lambda k: ["-h", "alg=HS256", "--kid", "x' UNION SELECT '1';--", "--sign", "1"]),
    attack("JWT-12 myjwt -h kid=SQL injection, RS256 signature kept",
           lambda k: ["-h", "kid=' OR 1 -- "]),
    attack("JWT-12 myjwt --kid $(touch ...)",
           lambda k: ["-h", "alg=HS256", "--kid", f"$(touch {k.folder}/rce-1)"], markers=("rce-1",)),
    attack("JWT-12 myjwt --kid ;touch ...",
           lambda k: ["-h", "alg=HS256", "--kid", f"{factories.KID};touch {k.folder}/rce-2"],
           markers=("rce-2",)),
    attack("JWT-12 myjwt -h kid=`touch ...`, RS256 signature kept",
           lambda k: ["-h", f"kid=`touch {k.folder}/rce-3`"], markers=("rce-3",)),
    attack("JWT-12 myjwt -h kid={{7*7}}, RS256 signature kept", lambda k: ["-h", "kid={{7*7}}"]),
    # JWT-24 psychic signature: ES256 with r = s = 0
    attack("JWT-24 myjwt -h alg=ES256, test: r=s=0 (JWS)", lambda k: ["-h", "alg=ES256"],
           then=psychic_signature(der=False)),
    attack("JWT-24 myjwt -h alg=ES256, test: r=s=0 (DER)", lambda k: ["-h", "alg=ES256"],
           then=psychic_signature(der=True)),
]


@pytest.fixture(scope="module")
def scan_upstream_server(pki: Pki) -> Iterator[Upstream]:
    """Stand-ins of XSUAA and CPI for this module alone: the key refetches that unknown kids cause
    stay out of the record the session's stand-ins keep (test_app_under_gunicorn.py counts them)."""
    with running_upstream(pki) as server:
        yield server


@pytest.fixture(scope="module")
def scan_app(scan_upstream_server: Upstream, pki: Pki,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    """The app under gunicorn for this module alone, so its log holds only the scan's requests."""
    log_path = tmp_path_factory.mktemp("scan-gunicorn") / "stderr.log"
    with running_gunicorn(app_environ(scan_upstream_server, pki, free_port()), log_path) as app:
        yield app


@pytest.fixture
def scan_upstream(scan_upstream_server: Upstream) -> Upstream:
    scan_upstream_server.reset()
    return scan_upstream_server


@pytest.fixture(scope="module")
def kit(scan_app: RunningApp, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kit]:
    folder = tmp_path_factory.mktemp("attacker")
    genuine = user_token(scan_app)
    # MyJWT reads header and payload with the standard base64 alphabet (no '-' or '_').
    assert not re.search(r"[-_]", genuine.rsplit(".", 1)[0]), "MyJWT cannot read this token; mint another"
    key = factories.rsa_key("xsuaa")
    public = key.public_key()
    files = {
        "public.pem": factories.public_jwk()["value"].encode(),
        "public-pkcs1.pem": public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1),
        "issuer.pem": key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    # The attacker's copies of the published key set, which MyJWT takes as its templates.
    for name in ("jwks.json", "jwks-attacker-kid.json"):
        (folder / name).write_text(json.dumps(factories.jwks()))
    with AttackerHost(folder) as attacker:
        yield Kit(genuine=genuine, attacker=attacker, public_pem=folder / "public.pem",
                  public_pkcs1=folder / "public-pkcs1.pem", issuer_key=folder / "issuer.pem")


def test_untouched_token_is_accepted(kit: Kit, scan_app: RunningApp, scan_upstream: Upstream) -> None:
    """The control: the scan reaches the app, and MyJWT reads and re-encodes the token unchanged."""
    response = homepage(scan_app, kit.genuine)

    assert response.status_code == 200, response.text
    assert response.json()["user_token"]["claims"]["sub"] == _payload(kit.genuine)["sub"]
    assert myjwt(kit, "-h", "typ=JWT") == kit.genuine  # the pass-through the JWT-02 rows start from


def test_token_made_by_myjwt_with_the_issuer_key_is_accepted(kit: Kit, scan_app: RunningApp,
                                                             scan_upstream: Upstream) -> None:
    """The control for MyJWT's own signing: its --jku mode with the issuer's key makes a token the
    app accepts (the jku is ignored, keys come from the binding), so its forgeries are readable."""
    token = myjwt(kit, "-h", f"jku={kit.attacker.url}/jwks.json", "--jku", kit.attacker.url,
                  "--file", "control", "--key", str(kit.issuer_key))
    fetched = len(kit.attacker.requests)

    response = homepage(scan_app, token)

    assert response.status_code == 200, response.text
    assert _segment(token, 0)["jku"] == f"{kit.attacker.url}/control.json"
    assert kit.attacker.requests[fetched:] == [], "the app fetched the jku of the token"


@pytest.mark.parametrize("case", ATTACKS)
def test_forged_token_is_refused(case: Attack, kit: Kit, scan_app: RunningApp,
                                 scan_upstream: Upstream) -> None:
    token = case.forge(kit)
    assert token != kit.genuine
    fetched = len(kit.attacker.requests)

    response = homepage(scan_app, token)

    assert response.status_code == 401, f"{response.status_code}: {response.text[:500]}"
    assert response.headers["WWW-Authenticate"] == CHALLENGE
    error = response.json()["error"]
    assert (error["error"], error["step"]) == ("invalid_token", "validate")
    assert scan_upstream.calls_to(TOKEN_PATH) == [] and scan_upstream.calls_to(IFLOW_PATH) == []
    assert scan_upstream.refusals() == []
    assert kit.attacker.requests[fetched:] == [], "the app fetched a URL the token names"
    assert [m for m in case.markers if (kit.folder / m).exists()] == [], "a kid was run as a command"
    log = scan_app.log()
    assert not any(len(part) >= 16 and part in log for part in token.split(".")), "the token is in the log"
