"""Login against IAS (OIDC) or XSUAA (OAuth 2.0): the authorization code flow with PKCE,
the token refresh, and the logout URL.

Authlib's framework-neutral ``AsyncOAuth2Client`` builds the authorization URL parameters and
makes the token calls over httpx2 (the successor of httpx that Authlib now uses); login and
refresh are not the hot path, so its cost is fine here (approuter.md §6). For IAS the ID token
is checked with joserfc against the tenant's keys: issuer, audience, expiry and the nonce of
this login. The token forwarded to the app is the IAS ID token (its ``aud`` carries the
subaccount's XSUAA with cross-consumption, which the app's jwt-bearer exchange needs), or the
XSUAA access token.
"""

from __future__ import annotations

import os
import secrets
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlencode, urlsplit

import certifi
import httpx2
from authlib.integrations.base_client import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

from seccore.bindings import ClientCredentials, IasBinding, XsuaaBinding
from seccore.compact import unverified_parts
from seccore.outbound import client_cert_files

__all__ = ["CodeRefused", "IdentityProvider", "LoginFailed", "RefreshRefused", "Tokens", "new_code_verifier",
           "tls_context"]

Kind = Literal["xsuaa", "ias"]
LEEWAY_SECONDS = 60


class LoginFailed(Exception):
    """The IdP refused or answered something unusable; the message is safe to show."""


class CodeRefused(LoginFailed):
    """The token endpoint refused the code itself (``invalid_grant``): another login's code,
    a made-up or used one, or a PKCE verifier that does not fit it (RFC 6749 §5.2)."""


class RefreshRefused(LoginFailed):
    """The token endpoint refused the refresh token (``invalid_grant``): revoked at a logout,
    expired, or the user was disabled. Unlike an outage, waiting will not help."""


@dataclass(frozen=True)
class Tokens:
    """What a session keeps of a login or a refresh."""

    forward: str  # the JWT forwarded to the app
    refresh_token: str | None
    expires_at: float  # epoch seconds
    scopes: tuple[str, ...]
    id_token: str | None
    claims: Mapping[str, Any]  # of the forwarded token, for user info and logs (no secrets)


def new_code_verifier() -> str:
    """A PKCE code verifier: 64 characters of 384 random bits (RFC 7636 §4.1 asks 43-128)."""
    return secrets.token_urlsafe(48)


def tls_context(credentials: ClientCredentials | None = None,
                environ: Mapping[str, str] = os.environ) -> ssl.SSLContext:
    """Verified TLS; extra CAs only from REQUESTS_CA_BUNDLE / SSL_CERT_FILE; mTLS for x509."""
    cafile = environ.get("REQUESTS_CA_BUNDLE") or environ.get("SSL_CERT_FILE") or certifi.where()
    context = ssl.create_default_context(cafile=cafile)
    if credentials is not None and credentials.is_x509:
        cert, key = client_cert_files(credentials.certificate or "", credentials.key or "")
        context.load_cert_chain(cert, key)
    return context


class IdentityProvider:
    """One bound identity service (``kind``) as seen by the gateway's OAuth client."""

    def __init__(self, kind: Kind, binding: XsuaaBinding | IasBinding, *, timeout: float = 10.0,
                 environ: Mapping[str, str] = os.environ) -> None:
        self.kind = kind
        self._binding = binding
        self._credentials = binding.credentials
        self._verify = tls_context(binding.credentials, environ)
        self._timeout = timeout
        self._metadata: dict[str, Any] | None = None
        self._keys: KeySet | None = None

    @property
    def client_id(self) -> str:
        return self._credentials.client_id

    def issued(self, iss: str) -> bool:
        """Whether an authorization response's ``iss`` (RFC 9207) names this IdP.

        IAS: its issuer exactly. XSUAA: ``https://<subdomain>.<uaadomain>/oauth/token``, as in
        its tokens; the binding's ``url`` is that host in BTP, but not behind a custom domain.
        """
        if self.kind == "ias":
            return iss == self._binding.url
        parts = urlsplit(iss)
        uaadomain = getattr(self._binding, "uaadomain", "")
        return (parts.scheme == "https" and parts.path == "/oauth/token" and not parts.query
                and bool(uaadomain) and parts.netloc.endswith("." + uaadomain))

    async def authorize_url(self, redirect_uri: str, *, state: str, nonce: str, code_verifier: str) -> str:
        """Where to send the browser: the IdP's authorization endpoint, with PKCE S256."""
        endpoint = (await self._endpoints())["authorization_endpoint"]
        params = {"response_type": "code", "client_id": self.client_id, "redirect_uri": redirect_uri,
                  "state": state, "code_challenge": create_s256_code_challenge(code_verifier),
                  "code_challenge_method": "S256"}
        if self.kind == "ias":
            params.update(scope="openid", nonce=nonce)
            if isinstance(self._binding, IasBinding) and self._binding.app_tid:
                params["app_tid"] = self._binding.app_tid
        return f"{endpoint}?{urlencode(params)}"

    async def redeem(self, code: str, *, redirect_uri: str, code_verifier: str, nonce: str) -> Tokens:
        """Exchange the authorization code (single use: never retried)."""
        async with self._client() as client:
            try:
                token = await client.fetch_token((await self._endpoints())["token_endpoint"], code=code,
                                                 redirect_uri=redirect_uri, code_verifier=code_verifier,
                                                 grant_type="authorization_code")
            except OAuthError as exc:
                # invalid_grant is about the code the browser brought, not the IdP's health: the
                # caller answers 400, not 502 (catalogue OIDC-06, RFC 9700 §4.5).
                failure = CodeRefused if exc.error == "invalid_grant" else LoginFailed
                raise failure(f"the {self.kind.upper()} token endpoint refused the login code "
                              f"({exc.error})") from exc
            except Exception as exc:  # noqa: BLE001 - Authlib/httpx raise many kinds; all mean "refused"
                raise LoginFailed(f"the {self.kind.upper()} token endpoint refused the login code "
                                  f"({type(exc).__name__})") from exc
        return await self._tokens(token, nonce=nonce)

    async def refresh(self, refresh_token: str) -> Tokens:
        async with self._client() as client:
            try:
                token = await client.refresh_token((await self._endpoints())["token_endpoint"],
                                                   refresh_token=refresh_token)
            except OAuthError as exc:
                failure = RefreshRefused if exc.error == "invalid_grant" else LoginFailed
                raise failure(f"the {self.kind.upper()} token refresh was refused ({exc.error})") from exc
            except Exception as exc:  # noqa: BLE001 - see redeem
                raise LoginFailed(f"the {self.kind.upper()} token refresh failed "
                                  f"({type(exc).__name__})") from exc
        return await self._tokens(token, nonce=None)

    async def logout_url(self, *, post_logout_redirect_uri: str | None, id_token: str | None) -> str:
        """The IdP's end-session URL (IAS) or ``logout.do`` (XSUAA), as approuter builds them."""
        if self.kind == "xsuaa":
            params = {"client_id": self.client_id}
            if post_logout_redirect_uri:
                params["redirect"] = post_logout_redirect_uri
            return f"{self._binding.url}/logout.do?{urlencode(params)}"
        endpoint = ((await self._endpoints()).get("end_session_endpoint")
                    or f"{self._binding.url}/oauth2/logout")
        params = {"client_id": self.client_id}
        if post_logout_redirect_uri:
            params["post_logout_redirect_uri"] = post_logout_redirect_uri
        if id_token:
            params["id_token_hint"] = id_token
        return f"{endpoint}?{urlencode(params)}"

    def _client(self) -> AsyncOAuth2Client:
        creds = self._credentials
        # XSUAA takes the secret in the form (approuter does so); IAS takes Basic.
        method = "client_secret_post" if self.kind == "xsuaa" else "client_secret_basic"
        if creds.is_x509:
            method = "none"
        return AsyncOAuth2Client(creds.client_id, creds.client_secret, token_endpoint_auth_method=method,
                                 verify=self._verify, timeout=self._timeout, follow_redirects=False,
                                 trust_env=False)

    async def _endpoints(self) -> dict[str, Any]:
        if self._metadata is None:
            if self.kind == "xsuaa":
                url = self._binding.url
                self._metadata = {"authorization_endpoint": f"{url}/oauth/authorize",
                                  "token_endpoint": f"{url}/oauth/token"}
            else:
                metadata = await self._get_json(f"{self._binding.url}/.well-known/openid-configuration")
                if metadata.get("issuer") != self._binding.url:
                    raise LoginFailed("the IAS discovery document names another issuer than the binding url")
                # The code and the client secret go only to the bound tenant, over https (the
                # binding url is https: seccore.bindings): a document naming another host or plain
                # http for the token endpoint is refused, not followed (OIDC-21, SSRF). The
                # browser's endpoints (authorize, logout) are the browser's to reach.
                token_endpoint, tenant = metadata.get("token_endpoint"), self._binding.url + "/"
                if not isinstance(token_endpoint, str) or not token_endpoint.startswith(tenant):
                    raise LoginFailed("the IAS discovery document names a token endpoint off the tenant")
                self._metadata = metadata
        return self._metadata

    async def _get_json(self, url: str) -> dict[str, Any]:
        async with httpx2.AsyncClient(verify=self._verify, timeout=self._timeout, follow_redirects=False,
                                     trust_env=False) as client:
            try:
                response = await client.get(url)
                response.raise_for_status()
                data = response.json()
            except (httpx2.HTTPError, ValueError) as exc:
                raise LoginFailed(f"{url} could not be read ({type(exc).__name__})") from exc
        if not isinstance(data, dict):
            raise LoginFailed(f"{url} is not a JSON object")
        return data

    async def _tokens(self, token: Mapping[str, Any], *, nonce: str | None) -> Tokens:
        access = token.get("access_token")
        if not isinstance(access, str):
            raise LoginFailed(f"the {self.kind.upper()} token endpoint answered without an access token")
        expires_in = token.get("expires_in")
        expires_at = time.time() + (float(expires_in) if isinstance(expires_in, (int, float)) else 300.0)
        scopes = tuple(str(token.get("scope") or "").split())
        id_token = token.get("id_token") if isinstance(token.get("id_token"), str) else None
        if self.kind == "ias":
            if id_token is None:
                raise LoginFailed("the IAS token endpoint answered without an ID token")
            claims = await self._checked_id_token(id_token, nonce)
            return Tokens(id_token, token.get("refresh_token"), expires_at, scopes, id_token, claims)
        try:  # the app validates it; the gateway only reads the user
            _, claims = unverified_parts(access)
        except ValueError as exc:
            raise LoginFailed("the XSUAA access token is not a JWT") from exc
        return Tokens(access, token.get("refresh_token"), expires_at, scopes, id_token, claims)

    async def _checked_id_token(self, id_token: str, nonce: str | None) -> dict[str, Any]:
        """OIDC Core §3.1.3.7: signature, iss, aud, exp, and the nonce of this login."""
        rules: dict[str, Any] = {"iss": {"essential": True, "value": self._binding.url},
                                 "aud": {"essential": True, "value": self.client_id},
                                 "exp": {"essential": True}, "iat": {"essential": True}}
        if nonce is not None:
            rules["nonce"] = {"essential": True, "value": nonce}
        for attempt in range(2):  # one refetch of the keys after a rotation
            keys = await self._key_set(refresh=attempt > 0)
            try:
                decoded = jwt.decode(id_token, keys, algorithms=["RS256"])
                JWTClaimsRegistry(leeway=LEEWAY_SECONDS, **rules).validate(decoded.claims)
                # joserfc also accepts a list that contains the value; a nonce is one string
                # (OIDC Core §2), so nothing but this login's string passes (OIDC-04).
                if nonce is not None and decoded.claims["nonce"] != nonce:
                    raise LoginFailed("the IAS ID token is not acceptable (invalid_claim)")
                self._check_azp(decoded.claims)
                return decoded.claims
            except JoseError as exc:
                if attempt or "key" not in type(exc).__name__.lower():
                    raise LoginFailed(f"the IAS ID token is not acceptable ({exc.error})") from exc
        raise LoginFailed("the IAS ID token is signed with an unknown key")

    def _check_azp(self, claims: Mapping[str, Any]) -> None:
        """OIDC Core §3.1.3.7 (4, 5): with several audiences the token names the party it was
        issued to, and that must be this client (IAS adds the subaccount's XSUAA to aud)."""
        azp, aud = claims.get("azp"), claims.get("aud")
        if azp is None and isinstance(aud, list) and len(aud) > 1:
            raise LoginFailed("the IAS ID token has several audiences but no azp")
        if azp is not None and azp != self.client_id:
            raise LoginFailed("the IAS ID token was issued to another client (azp)")

    async def _key_set(self, *, refresh: bool) -> KeySet:
        if self._keys is None or refresh:
            jwks_uri = (await self._endpoints()).get("jwks_uri")
            if not isinstance(jwks_uri, str) or not jwks_uri.startswith(self._binding.url + "/"):
                raise LoginFailed("the IAS discovery document names no key URL on the tenant")
            document = await self._get_json(jwks_uri)
            try:
                self._keys = KeySet.import_key_set(document)
            except (JoseError, ValueError, TypeError, KeyError, AttributeError) as exc:
                # A key set that is JSON but no JWKS (a broken JWK, no "keys") is the IdP's fault
                # like an unreadable one: LoginFailed (502), not an unexpected error (IDP-08).
                raise LoginFailed(f"{jwks_uri} is no usable key set ({type(exc).__name__})") from exc
        return self._keys
