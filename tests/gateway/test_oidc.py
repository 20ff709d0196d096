"""The gateway's OAuth client against the emulator over real HTTPS: login with PKCE, the
ID token checks, refresh, logout URLs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from gateway.oidc import CodeRefused, IdentityProvider, LoginFailed, new_code_verifier
from seccore import load_bindings
from seccore.compact import unverified_parts
from tests.emulator.conftest import RunningEmulator
from tests.emulator.logindriver import CALLBACK, LOCAL, query, request_id, start_local

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningEmulator]:
    running = start_local(tmp_path_factory.mktemp("emulator"))
    try:
        yield running
    finally:
        running.servers.stop()


def provider(emulator: RunningEmulator, kind: str) -> IdentityProvider:
    bindings = load_bindings({"VCAP_SERVICES": emulator.vcap_services})
    binding = bindings.ias if kind == "ias" else bindings.xsuaa
    assert binding is not None
    return IdentityProvider(kind, binding, environ={"REQUESTS_CA_BUNDLE": str(emulator.pki.ca_file)})  # type: ignore[arg-type]


def browse_to_callback(emulator: RunningEmulator, url: str, user: str = "jane") -> dict[str, str]:
    """What a browser does: open the authorization URL, pick the user, land on the callback."""
    http = requests.Session()
    page = http.get(url, verify=emulator.pki.ca_file, allow_redirects=False, timeout=5)
    assert page.status_code == 200, page.text
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(url))
    action = "/oauth2/login" if "/oauth2/" in url else "/login.do"
    answer = http.post(origin + action, data={"request": request_id(page), "user": user},
                       verify=emulator.pki.ca_file, allow_redirects=False, timeout=5)
    assert answer.status_code == 302 and answer.headers["Location"].startswith(CALLBACK), answer.text
    return query(answer)


@pytest.mark.parametrize("kind", ["ias", "xsuaa"])
async def test_login_refresh_and_logout(emulator: RunningEmulator, kind: str) -> None:
    idp = provider(emulator, kind)
    state, nonce, verifier = secrets.token_urlsafe(16), secrets.token_urlsafe(16), new_code_verifier()
    url = await idp.authorize_url(CALLBACK, state=state, nonce=nonce, code_verifier=verifier)
    params = parse_qs(urlsplit(url).query)
    assert params["code_challenge_method"] == ["S256"] and "code_verifier" not in params

    callback = browse_to_callback(emulator, url)
    assert callback["state"] == state
    tokens = await idp.redeem(callback["code"], redirect_uri=CALLBACK, code_verifier=verifier, nonce=nonce)

    assert tokens.claims["email"] == "jane.doe@example.com"
    if kind == "ias":
        assert tokens.forward == tokens.id_token  # the ID token carries the XSUAA audience
        assert emulator.config.ias_xsuaa_rp in tokens.claims["aud"]
    else:
        assert f"{emulator.config.app.xsappname}.Display" in tokens.scopes
    refreshed = await idp.refresh(tokens.refresh_token or "")
    assert refreshed.forward != tokens.forward and refreshed.claims["email"] == "jane.doe@example.com"

    logout = await idp.logout_url(post_logout_redirect_uri=LOCAL + "/logout.html", id_token=tokens.id_token)
    answer = requests.get(logout, verify=emulator.pki.ca_file, allow_redirects=False, timeout=5)
    assert answer.status_code == 302 and answer.headers["Location"].startswith(LOCAL + "/logout.html")


async def test_a_code_with_another_nonce_is_refused(emulator: RunningEmulator) -> None:
    idp = provider(emulator, "ias")
    verifier = new_code_verifier()
    url = await idp.authorize_url(CALLBACK, state="s", nonce="the-right-one", code_verifier=verifier)
    callback = browse_to_callback(emulator, url)
    with pytest.raises(LoginFailed, match="ID token is not acceptable"):
        await idp.redeem(callback["code"], redirect_uri=CALLBACK, code_verifier=verifier, nonce="another")


@pytest.mark.parametrize("kind", ["ias", "xsuaa"])
async def test_a_wrong_verifier_or_a_replayed_code_is_refused(emulator: RunningEmulator, kind: str) -> None:
    idp = provider(emulator, kind)
    verifier = new_code_verifier()
    url = await idp.authorize_url(CALLBACK, state="s", nonce="n", code_verifier=verifier)
    code = browse_to_callback(emulator, url)["code"]
    with pytest.raises(CodeRefused):  # invalid_grant: the gateway answers 400 (OIDC-06)
        await idp.redeem(code, redirect_uri=CALLBACK, code_verifier="x" * 43, nonce="n")
    await idp.redeem(code, redirect_uri=CALLBACK, code_verifier=verifier, nonce="n")
    with pytest.raises(CodeRefused):  # single use
        await idp.redeem(code, redirect_uri=CALLBACK, code_verifier=verifier, nonce="n")


async def test_the_ca_is_trusted_only_through_the_standard_variables(emulator: RunningEmulator) -> None:
    bindings = load_bindings({"VCAP_SERVICES": emulator.vcap_services})
    assert bindings.ias is not None
    untrusting = IdentityProvider("ias", bindings.ias, environ={})
    with pytest.raises(LoginFailed, match="could not be read"):
        await untrusting.authorize_url(CALLBACK, state="s", nonce="n", code_verifier="v" * 43)
    assert json.loads(emulator.vcap_services)["identity"][0]["credentials"]["url"].startswith("https://")


@pytest.fixture
def overrides(emulator: RunningEmulator) -> Iterator[Callable[[dict[str, Any]], None]]:
    """Claims the emulator writes into every token it issues next (its fault switch), reset after."""
    def apply(claims: dict[str, Any]) -> None:
        answer = requests.post(emulator.https + "/_emu/claims", json=claims, verify=emulator.pki.ca_file,
                               timeout=5)
        assert answer.status_code == 200, answer.text

    yield apply
    apply({})


@pytest.mark.parametrize(("claims", "words"), [
    pytest.param({"iss": "https://evil.example"}, "not acceptable", id="OIDC-09 another issuer"),
    pytest.param({"aud": ["another-client"]}, "not acceptable", id="OIDC-09 another audience"),
    pytest.param({"exp": 1}, "not acceptable", id="OIDC-09 expired"),
    pytest.param({"azp": "another-client"}, "another client", id="OIDC-09 azp of another client"),
    pytest.param({"azp": None}, "no azp", id="OIDC-09 several audiences, no azp"),
])
async def test_an_id_token_that_fails_a_check_ends_the_login(emulator: RunningEmulator, overrides: Any,
                                                            claims: dict[str, Any], words: str) -> None:
    idp = provider(emulator, "ias")
    verifier = new_code_verifier()
    url = await idp.authorize_url(CALLBACK, state="s", nonce="n", code_verifier=verifier)
    code = browse_to_callback(emulator, url)["code"]
    overrides(claims)  # the ID token is minted when the code is redeemed
    with pytest.raises(LoginFailed, match=words):
        await idp.redeem(code, redirect_uri=CALLBACK, code_verifier=verifier, nonce="n")


@pytest.fixture
def fault(emulator: RunningEmulator) -> Iterator[Callable[[dict[str, Any]], None]]:
    """Queue an emulator fault (emulator/faults.py) for the next request of an endpoint; cleared after."""
    def admin(method: str, body: dict[str, Any] | None = None) -> None:
        answer = requests.request(method, emulator.https + "/_emu/faults", json=body,
                                  verify=emulator.pki.ca_file, timeout=5)
        assert answer.status_code == 200, answer.text

    yield lambda spec: admin("POST", spec)
    admin("DELETE")


def without_nonce(url: str) -> str:
    """``url`` with its ``nonce`` parameter removed: the emulator then writes no nonce claim."""
    parts = urlsplit(url)
    kept = [(k, v) for k, v in parse_qsl(parts.query) if k != "nonce"]
    return parts._replace(query=urlencode(kept)).geturl()


@pytest.mark.parametrize(("ask_nonce", "claims"), [
    pytest.param(False, {}, id="no nonce claim"),
    pytest.param(True, {"nonce": None}, id="nonce null"),
    pytest.param(True, {"nonce": ""}, id="empty nonce"),
    pytest.param(True, {"nonce": "an-earlier-login-s-nonce"}, id="another login's nonce"),
    pytest.param(True, {"nonce": ["n"]}, id="a list holding this login's nonce"),
])
async def test_oidc04_an_id_token_without_exactly_this_login_s_nonce_is_refused(
        emulator: RunningEmulator, overrides: Any, ask_nonce: bool, claims: dict[str, Any]) -> None:
    idp = provider(emulator, "ias")
    verifier = new_code_verifier()
    url = await idp.authorize_url(CALLBACK, state="s", nonce="n", code_verifier=verifier)
    code = browse_to_callback(emulator, url if ask_nonce else without_nonce(url))["code"]
    overrides(claims)
    with pytest.raises(LoginFailed, match="not acceptable"):
        await idp.redeem(code, redirect_uri=CALLBACK, code_verifier=verifier, nonce="n")


async def test_oidc04_an_earlier_login_s_id_token_replayed_by_the_token_endpoint_is_refused(
        emulator: RunningEmulator, fault: Any) -> None:
    """A genuine, unexpired ID token of an earlier login, answered again (a replayed response)."""
    idp = provider(emulator, "ias")
    verifier = new_code_verifier()
    url = await idp.authorize_url(CALLBACK, state="s", nonce="first", code_verifier=verifier)
    code = browse_to_callback(emulator, url)["code"]
    earlier = await idp.redeem(code, redirect_uri=CALLBACK, code_verifier=verifier, nonce="first")

    verifier = new_code_verifier()
    url = await idp.authorize_url(CALLBACK, state="s", nonce="second", code_verifier=verifier)
    code = browse_to_callback(emulator, url)["code"]
    fault({"endpoint": "ias.token", "status": 200, "json": {
        "access_token": earlier.id_token, "id_token": earlier.id_token, "token_type": "Bearer",
        "expires_in": 3600}})
    with pytest.raises(LoginFailed, match="not acceptable"):
        await idp.redeem(code, redirect_uri=CALLBACK, code_verifier=verifier, nonce="second")


@pytest.mark.parametrize("kind", ["ias", "xsuaa"])
@pytest.mark.parametrize(("code", "answer", "refused"), [
    pytest.param("another login's", None, True, id="another login's code"),
    pytest.param("made-up", None, True, id="a made-up code"),
    pytest.param("this login's", {"status": 503}, False, id="token endpoint 503"),
    pytest.param("this login's", {"status": 401, "json": {"error": "invalid_client"}}, False,
                 id="token endpoint refuses the client"),
])
async def test_oidc06_only_a_refused_code_is_code_refused(emulator: RunningEmulator, fault: Any, kind: str,
                                                         code: str, answer: dict[str, Any] | None,
                                                         refused: bool) -> None:
    """CodeRefused (the gateway's 400) for invalid_grant; any other failure stays LoginFailed (502)."""
    idp = provider(emulator, kind)
    verifier = new_code_verifier()
    url = await idp.authorize_url(CALLBACK, state="s", nonce="n", code_verifier=verifier)
    own = browse_to_callback(emulator, url)["code"]
    if code == "another login's":
        other = await idp.authorize_url(CALLBACK, state="t", nonce="n", code_verifier=new_code_verifier())
        own = browse_to_callback(emulator, other, user="john")["code"]
    elif code == "made-up":
        own = secrets.token_urlsafe(32)
    if answer is not None:
        fault({"endpoint": f"{kind}.token", **answer})
    with pytest.raises(LoginFailed) as caught:
        await idp.redeem(own, redirect_uri=CALLBACK, code_verifier=verifier, nonce="n")
    assert isinstance(caught.value, CodeRefused) is refused


@pytest.mark.parametrize(("change", "words"), [
    pytest.param({"issuer": "https://evil.example"}, "another issuer", id="OIDC-08 another issuer"),
    pytest.param({"token_endpoint": "https://evil.example/oauth2/token"}, "token endpoint off the tenant",
                 id="OIDC-21 token endpoint on another host"),
    pytest.param({"token_endpoint": "http://{host}/oauth2/token"}, "token endpoint off the tenant",
                 id="OIDC-21 token endpoint over http"),
])
async def test_a_discovery_document_that_leads_off_the_tenant_is_refused(emulator: RunningEmulator,
                                                                         change: dict[str, str],
                                                                         words: str) -> None:
    """The code and the client secret would go where the document says: it must be the tenant."""
    ca = emulator.pki.ca_file
    document = requests.get(emulator.config.urls.ias + "/.well-known/openid-configuration", verify=ca,
                            timeout=5).json()
    host = urlsplit(emulator.config.urls.ias).netloc
    forged = {**document, **{k: v.format(host=host) for k, v in change.items()}}
    fault = {"endpoint": "ias.discovery", "status": 200, "json": forged}
    requests.post(emulator.https + "/_emu/faults", json=fault, verify=ca, timeout=5).raise_for_status()
    try:
        with pytest.raises(LoginFailed, match=words):
            await provider(emulator, "ias").authorize_url(CALLBACK, state="s", nonce="n",
                                                          code_verifier=new_code_verifier())
    finally:
        requests.delete(emulator.https + "/_emu/faults", verify=ca, timeout=5).raise_for_status()


# --- OIDC-09: the key and the algorithm of an ID token -------------------------------------------

def tenant(emulator: RunningEmulator) -> Any:
    """The emulator's state (keys, token factory, request log), in this process."""
    return emulator.app.extensions["emulator"]  # type: ignore[attr-defined]


def id_token_claims(emulator: RunningEmulator, nonce: str, **changes: Any) -> dict[str, Any]:
    """The claims the emulator writes into an IAS ID token (emulator/tokens.py), a ``None``
    change dropping that claim."""
    cfg, now = emulator.config, int(time.time())
    claims: dict[str, Any] = {
        "sub": "forged-user", "iss": cfg.urls.ias, "aud": [cfg.ias_app.client_id, cfg.ias_xsuaa_rp],
        "azp": cfg.ias_app.client_id, "email": "jane.doe@example.com", "app_tid": cfg.zone_id,
        "jti": secrets.token_hex(8), "auth_time": now, "iat": now, "exp": now + 600, "nonce": nonce}
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def compact(header: dict[str, Any], claims: dict[str, Any], sign: Callable[[bytes], bytes]) -> str:
    """A JWS built by hand, so that any header (alg none, HS256) can be written."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{b64(sign(signing_input.encode()))}"


def token_answer(id_token: str) -> dict[str, Any]:
    """A token endpoint answer (a ``fault`` with status 200) that carries ``id_token``."""
    return {"endpoint": "ias.token", "status": 200, "json": {
        "access_token": id_token, "id_token": id_token, "token_type": "Bearer", "expires_in": 3600}}


def key_fetches(emulator: RunningEmulator) -> int:
    """How often the tenant's keys were fetched since the request log was last cleared."""
    ias_keys = urlsplit(requests.get(emulator.config.urls.ias + "/.well-known/openid-configuration",
                                     verify=emulator.pki.ca_file, timeout=5).json()["jwks_uri"]).path
    return sum(1 for r in tenant(emulator).requests if r["path"] == ias_keys)


async def login_code(emulator: RunningEmulator, idp: IdentityProvider, nonce: str) -> tuple[str, str]:
    """A real code of this login (the fault answer replaces what the token endpoint sends)."""
    verifier = new_code_verifier()
    url = await idp.authorize_url(CALLBACK, state="s", nonce=nonce, code_verifier=verifier)
    return browse_to_callback(emulator, url)["code"], verifier


async def logged_in(emulator: RunningEmulator, idp: IdentityProvider) -> None:
    """One genuine login, so that ``idp`` holds the tenant's keys of now."""
    code, verifier = await login_code(emulator, idp, "warm")
    await idp.redeem(code, redirect_uri=CALLBACK, code_verifier=verifier, nonce="warm")


async def test_oidc09_an_id_token_of_a_key_the_tenant_does_not_publish_is_refused_after_one_refetch(
        emulator: RunningEmulator, fault: Any) -> None:
    idp = provider(emulator, "ias")
    await logged_in(emulator, idp)
    stranger = RSAKey.generate_key(2048)
    forged = jwt.encode({"alg": "RS256", "kid": "ias-key-forged", "typ": "JWT"},
                        id_token_claims(emulator, "n"), stranger, algorithms=["RS256"])
    code, verifier = await login_code(emulator, idp, "n")
    fault(token_answer(forged))
    tenant(emulator).requests.clear()  # the log keeps the last 500 requests only
    with pytest.raises(LoginFailed, match="not acceptable"):
        await idp.redeem(code, redirect_uri=CALLBACK, code_verifier=verifier, nonce="n")
    assert key_fetches(emulator) == 1  # one refetch, not one per token (no fetch storm)


@pytest.mark.parametrize("same_kid", [
    pytest.param(False, id="unknown kid"),
    pytest.param(True, id="the tenant's kid, another key"),
])
async def test_oidc09_a_forged_id_token_with_the_right_claims_is_refused(
        emulator: RunningEmulator, fault: Any, same_kid: bool) -> None:
    """Right iss/aud/azp/nonce/exp, but not signed by the tenant: the signature alone refuses it."""
    idp = provider(emulator, "ias")
    kid = tenant(emulator).ias_keys.signing[0] if same_kid else "ias-key-forged"
    forged = jwt.encode({"alg": "RS256", "kid": kid, "typ": "JWT"}, id_token_claims(emulator, "n"),
                        RSAKey.generate_key(2048), algorithms=["RS256"])
    code, verifier = await login_code(emulator, idp, "n")
    fault(token_answer(forged))
    with pytest.raises(LoginFailed, match="not acceptable"):
        await idp.redeem(code, redirect_uri=CALLBACK, code_verifier=verifier, nonce="n")


async def test_oidc09_an_id_token_of_a_rotated_key_is_accepted_after_one_refetch(
        emulator: RunningEmulator) -> None:
    idp = provider(emulator, "ias")
    await logged_in(emulator, idp)  # the keys of before the rotation are cached
    answer = requests.post(emulator.https + "/_emu/keys/rotate", json={"service": "ias"},
                           verify=emulator.pki.ca_file, timeout=5)
    assert answer.status_code == 200, answer.text
    new_kid = answer.json()["signing_kid"]
    code, verifier = await login_code(emulator, idp, "after-rotation")
    tenant(emulator).requests.clear()
    tokens = await idp.redeem(code, redirect_uri=CALLBACK, code_verifier=verifier, nonce="after-rotation")
    assert tokens.claims["email"] == "jane.doe@example.com"
    assert unverified_parts(tokens.forward)[0]["kid"] == new_kid
    assert key_fetches(emulator) == 1


def _tenant_key(emulator: RunningEmulator) -> tuple[str, RSAKey]:
    kid, key = tenant(emulator).ias_keys.signing
    return kid, key


def _signed_by_tenant(alg: str) -> Callable[[RunningEmulator, dict[str, Any]], str]:
    """The tenant's own (published) key and kid, but another RSA algorithm than RS256."""
    def make(emulator: RunningEmulator, claims: dict[str, Any]) -> str:
        kid, key = _tenant_key(emulator)
        return jwt.encode({"alg": alg, "kid": kid, "typ": "JWT"}, claims, key, algorithms=[alg])
    return make


def _hs256_with_the_public_key(emulator: RunningEmulator, claims: dict[str, Any]) -> str:
    """Key confusion: HMAC keyed with the tenant's public key, which anybody can read."""
    kid, key = _tenant_key(emulator)
    secret = key.as_pem(private=False)
    return compact({"alg": "HS256", "kid": kid, "typ": "JWT"}, claims,
                   lambda data: hmac.new(secret, data, hashlib.sha256).digest())


def _unsigned(emulator: RunningEmulator, claims: dict[str, Any]) -> str:
    return compact({"alg": "none", "kid": _tenant_key(emulator)[0], "typ": "JWT"}, claims, lambda _: b"")


def _es256(emulator: RunningEmulator, claims: dict[str, Any]) -> str:
    return jwt.encode({"alg": "ES256", "kid": _tenant_key(emulator)[0], "typ": "JWT"}, claims,
                      ECKey.generate_key("P-256"), algorithms=["ES256"])


@pytest.mark.parametrize("forge", [
    pytest.param(_unsigned, id="alg none"),
    pytest.param(_hs256_with_the_public_key, id="HS256 keyed with the public key"),
    pytest.param(_signed_by_tenant("RS512"), id="RS512 by the tenant's key"),
    pytest.param(_signed_by_tenant("PS256"), id="PS256 by the tenant's key"),
    pytest.param(_es256, id="ES256 with the tenant's kid"),
])
async def test_oidc09_an_id_token_whose_alg_is_not_rs256_is_refused(
        emulator: RunningEmulator, fault: Any,
        forge: Callable[[RunningEmulator, dict[str, Any]], str]) -> None:
    idp = provider(emulator, "ias")
    code, verifier = await login_code(emulator, idp, "n")
    fault(token_answer(forge(emulator, id_token_claims(emulator, "n"))))
    with pytest.raises(LoginFailed, match="not acceptable"):
        await idp.redeem(code, redirect_uri=CALLBACK, code_verifier=verifier, nonce="n")


@pytest.mark.parametrize("missing", ["iat", "exp", "iss", "aud"])
async def test_oidc09_a_tenant_signed_id_token_without_a_required_claim_is_refused(
        emulator: RunningEmulator, fault: Any, missing: str) -> None:
    idp = provider(emulator, "ias")
    code, verifier = await login_code(emulator, idp, "n")
    claims = id_token_claims(emulator, "n", **{missing: None})
    fault(token_answer(_signed_by_tenant("RS256")(emulator, claims)))
    with pytest.raises(LoginFailed, match="not acceptable"):
        await idp.redeem(code, redirect_uri=CALLBACK, code_verifier=verifier, nonce="n")


async def test_oidc09_the_tenant_signed_forgery_helper_is_accepted_when_nothing_is_wrong(
        emulator: RunningEmulator, fault: Any) -> None:
    """The control of the tables above: the same construction, nothing changed, logs in."""
    idp = provider(emulator, "ias")
    code, verifier = await login_code(emulator, idp, "n")
    fault(token_answer(_signed_by_tenant("RS256")(emulator, id_token_claims(emulator, "n"))))
    tokens = await idp.redeem(code, redirect_uri=CALLBACK, code_verifier=verifier, nonce="n")
    assert tokens.claims["sub"] == "forged-user"


# --- IDP-08: the emulator's fault knobs drive what the gateway's OAuth client meets -------------

@pytest.mark.parametrize("answer", [
    pytest.param({"endpoint": "ias.token", "status": 429, "retry_after": 30,
                  "json": {"error": "temporarily_unavailable"}}, id="token 429 + Retry-After"),
    pytest.param({"endpoint": "ias.token", "status": 200, "body": '{"access_token": "x", "id_t'},
                 id="token 200 truncated JSON"),
    pytest.param({"endpoint": "ias.token", "status": 200, "body": "<html><body>Maintenance</body></html>",
                  "content_type": "text/html"}, id="token 200 HTML page"),
    pytest.param({"endpoint": "ias.token", "status": 200, "json": ["not", "an", "object"]},
                 id="token 200 JSON array"),
    pytest.param({"endpoint": "ias.token", "status": 200, "json": {"token_type": "Bearer"}},
                 id="token 200 without tokens"),
    pytest.param({"endpoint": "ias.token", "status": 200, "json": {
        "access_token": "a", "id_token": "not.a.jwt", "token_type": "Bearer"}},
        id="token 200 ID token no JWT"),
    pytest.param({"endpoint": "ias.keys", "status": 200, "body": '{"keys": [', "count": 0},
                 id="keys 200 truncated JSON"),
    pytest.param({"endpoint": "ias.keys", "status": 200, "body": "<html></html>", "content_type": "text/html",
                  "count": 0}, id="keys 200 HTML page"),
    pytest.param({"endpoint": "ias.keys", "status": 200, "json": {"keys": [{"kty": "RSA"}]}, "count": 0},
                 id="keys 200 broken JWK"),
    pytest.param({"endpoint": "ias.keys", "status": 200, "json": {"keys": "none"}, "count": 0},
                 id="keys 200 keys not a list"),
    pytest.param({"endpoint": "ias.keys", "status": 200, "json": {"kty": "RSA"}, "count": 0},
                 id="keys 200 one JWK, no set"),
    pytest.param({"endpoint": "ias.keys", "status": 200, "json": {"keys": [None]}, "count": 0},
                 id="keys 200 null JWK"),
    pytest.param({"endpoint": "ias.keys", "status": 429, "retry_after": 5, "count": 0}, id="keys 429"),
])
async def test_idp08_a_malformed_or_throttled_idp_answer_is_a_failed_login_not_a_crash(
        emulator: RunningEmulator, fault: Any, answer: dict[str, Any]) -> None:
    """Every such answer is LoginFailed (the gateway's 502 page), never CodeRefused (400) nor an
    exception the gateway does not expect."""
    idp = provider(emulator, "ias")  # fresh: no keys cached, so a keys fault is met
    code, verifier = await login_code(emulator, idp, "n")
    fault(answer)
    with pytest.raises(LoginFailed) as caught:
        await idp.redeem(code, redirect_uri=CALLBACK, code_verifier=verifier, nonce="n")
    assert not isinstance(caught.value, CodeRefused)


@pytest.mark.parametrize("answer", [
    pytest.param({"status": 200, "body": "{", "count": 0}, id="truncated JSON"),
    pytest.param({"status": 200, "body": "<html></html>", "content_type": "text/html", "count": 0},
                 id="HTML page"),
    pytest.param({"status": 200, "json": [1, 2], "count": 0}, id="JSON array"),
    pytest.param({"status": 429, "retry_after": 5, "count": 0}, id="429"),
])
async def test_idp08_a_malformed_discovery_document_is_a_failed_login(emulator: RunningEmulator, fault: Any,
                                                                      answer: dict[str, Any]) -> None:
    fault({"endpoint": "ias.discovery", **answer})
    with pytest.raises(LoginFailed, match="could not be read|not a JSON object"):
        await provider(emulator, "ias").authorize_url(CALLBACK, state="s", nonce="n",
                                                      code_verifier=new_code_verifier())
