"""The emulated subaccount, derived from the files we deploy.

``xs-security.json`` gives the app's XSUAA client, its scopes and role templates;
``config-cpi.json`` the CPI (it-rt) client, its grant types and roles; ``config-ias.json``
the app's IAS application and whether it is ``xsuaa-cross-consumption``. A small users
file adds what the cockpit holds: users, their IAS groups, role collections and the
group → role collection mappings of the trust configuration, and the deployed iFlows.
"""

from __future__ import annotations

import json
import secrets
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = ["Client", "EmulatorConfig", "IflowSpec", "Urls", "User", "load_config"]

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
SUBDOMAIN = "frontapp-dev"
#: Fixed ids, so that bindings written once stay valid across restarts of one workspace.
ZONE_ID = "2c4e1f0a-9b7d-4d3e-8f6a-5b4c3d2e1f00"
SUBACCOUNT_ID = "7d1e3c5a-2b4f-4e6d-9c8b-0a1f2e3d4c5b"
CPI_INSTANCE_ID = "5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b"
IAS_APP_ID = "4a5b6c7d-8e9f-4a0b-9c1d-2e3f4a5b6c7d"
IAS_XSUAA_RP_ID = "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a"  # IAS application "XSUAA_<subaccount>"


@dataclass(frozen=True)
class Urls:
    """Where the emulated services answer. One HTTPS listener serves all three services;
    the browser-facing login pages are also offered over plain HTTP on loopback."""

    https_port: int
    http_port: int

    @property
    def ias(self) -> str:
        # https://127.0.0.1:<port> resolves everywhere, equals the binding url, and is of
        # the form https://<label>.<domain> (label "127", domain "0.0.1:<port>") that SAP's
        # Python library requires of IAS issuers.
        return f"https://127.0.0.1:{self.https_port}"

    @property
    def ias_domain(self) -> str:
        return f"0.0.1:{self.https_port}"

    @property
    def uaadomain(self) -> str:
        return f"localhost:{self.https_port}"

    @property
    def xsuaa(self) -> str:
        return f"https://{self.uaadomain}"

    @property
    def xsuaa_issuer(self) -> str:
        # What XSUAA writes into "iss"; nobody fetches from it (keys come from uaadomain).
        return f"https://{SUBDOMAIN}.{self.uaadomain}/oauth/token"

    @property
    def cpi(self) -> str:
        return f"https://localhost:{self.https_port}"

    @property
    def browser(self) -> str:
        return f"http://localhost:{self.http_port}"


@dataclass(frozen=True)
class Client:
    """An OAuth client of XSUAA or IAS."""

    client_id: str
    secret: str = field(repr=False)
    grant_types: frozenset[str]
    #: scopes the client may receive (XSUAA); empty for IAS
    scopes: frozenset[str] = frozenset()
    redirect_uris: tuple[str, ...] = ()
    post_logout_redirect_uris: tuple[str, ...] = ()
    xsappname: str = ""
    #: the certificate a client may authenticate with instead of its secret (x509 bindings)
    certificate_pem: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class User:
    name: str
    password: str = field(repr=False)
    email: str
    given_name: str
    family_name: str
    groups: tuple[str, ...]
    id: str  # the IAS user uuid; XSUAA's shadow user id is derived from it

    @property
    def xsuaa_id(self) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, "xsuaa:" + self.id))


@dataclass(frozen=True)
class IflowSpec:
    path: str
    #: the role of the HTTPS sender adapter (config-cpi.json "roles"), None for none
    role: str | None
    answer: str = "echo"


@dataclass
class EmulatorConfig:
    urls: Urls
    app: Client  # the app's XSUAA client (xs-security.json)
    cpi: Client  # the CPI it-rt client (config-cpi.json)
    ias_app: Client  # the app's IAS application (config-ias.json)
    cross_consumption: bool
    cpi_broker: str  # it-rt-<subdomain>!b196: the prefix of CPI role scopes
    role_templates: dict[str, frozenset[str]]  # "<app xsappname base>.<template>" -> scopes
    role_collections: dict[str, tuple[str, ...]]
    group_mappings: dict[str, tuple[str, ...]]
    users: dict[str, User]
    iflows: dict[str, IflowSpec]
    token_validity: int = 3600
    ias_token_validity: int = 3600
    zone_id: str = ZONE_ID
    subaccount_id: str = SUBACCOUNT_ID
    subdomain: str = SUBDOMAIN
    ias_xsuaa_rp: str = IAS_XSUAA_RP_ID

    def user_scopes(self, user: User) -> frozenset[str]:
        """The scopes of every role in the user's role collections (via their IAS groups)."""
        collections = {c for g in user.groups for c in self.group_mappings.get(g, ())}
        return frozenset(s for c in collections for ref in self.role_collections.get(c, ())
                         for s in self.role_templates.get(ref, ()))

    def user_role_collections(self, user: User) -> list[str]:
        return sorted({c for g in user.groups for c in self.group_mappings.get(g, ())})

    def user_by_login(self, login: str) -> User | None:
        login = login.lower()
        return next((u for u in self.users.values() if login in (u.name, u.email.lower())), None)

    def client(self, client_id: str) -> Client | None:
        return next((c for c in (self.app, self.cpi, self.ias_app) if c.client_id == client_id), None)


def load_config(root: Path, users_file: Path, urls: Urls, *, secrets_file: Path | None = None,
                certificate_pem: str | None = None,
                local_origins: tuple[str, ...] = ()) -> EmulatorConfig:
    """Read the deploy files in ``root`` and the users file; client secrets come from
    ``secrets_file`` (made once per workspace) so that written bindings stay valid."""
    xs = _json(root / "xs-security.json")
    cpi_json = _json(root / "config-cpi.json")
    ias_json = _json(root / "config-ias.json")
    people = _json(users_file)
    saved = _secrets(secrets_file)
    base = xs.get("xsappname", "app")
    xsappname = f"{base}!t1001"
    broker = f"it-rt-{SUBDOMAIN}!b196"
    templates = _role_templates(xs, base, xsappname)
    templates.update({f"it-rt.{r}": frozenset({f"{broker}.{r}"}) for r in cpi_json.get("roles", [])})
    oauth = xs.get("oauth2-configuration", {})
    app = Client(
        client_id=f"sb-{xsappname}", secret=saved["app"], xsappname=xsappname,
        grant_types=frozenset({"authorization_code", "refresh_token", "client_credentials", JWT_BEARER}),
        scopes=frozenset({"openid", *(s["name"].replace("$XSAPPNAME", xsappname)
                                      for s in xs.get("scopes", []))}),
        redirect_uris=_local_redirects(oauth.get("redirect-uris", []), local_origins))
    cpi = Client(
        client_id=f"sb-{CPI_INSTANCE_ID}!b1002|{broker}", secret=saved["cpi"],
        xsappname=f"{CPI_INSTANCE_ID}!b1002|{broker}",
        grant_types=frozenset(cpi_json.get("grant-types", ["client_credentials"])),
        scopes=frozenset({"openid", "uaa.resource", *(f"{broker}.{r}" for r in cpi_json.get("roles", []))}),
        redirect_uris=tuple(cpi_json.get("redirect-uris", [])), certificate_pem=certificate_pem)
    ias_oauth = ias_json.get("oauth2-configuration", {})
    ias_app = Client(
        client_id=IAS_APP_ID, secret=saved["ias"],
        grant_types=frozenset({"authorization_code", "refresh_token", "client_credentials"}),
        redirect_uris=_local_redirects(ias_oauth.get("redirect-uris", []), local_origins),
        post_logout_redirect_uris=_local_redirects(ias_oauth.get("post-logout-redirect-uris", []),
                                                   local_origins))
    users = {u["name"]: User(name=u["name"], password=u.get("password", u["name"]), email=u["email"],
                             given_name=u.get("given_name", ""), family_name=u.get("family_name", ""),
                             groups=tuple(u.get("groups", [])),
                             id=str(uuid.uuid5(uuid.NAMESPACE_URL, "ias:" + u["email"])))
             for u in people.get("users", [])}
    return EmulatorConfig(
        urls=urls, app=app, cpi=cpi, ias_app=ias_app,
        cross_consumption=bool(ias_json.get("xsuaa-cross-consumption", False)),
        cpi_broker=broker, role_templates=templates,
        role_collections={k: tuple(v) for k, v in people.get("role_collections", {}).items()},
        group_mappings={k: tuple(v) for k, v in people.get("group_mappings", {}).items()},
        users=users,
        iflows={p: IflowSpec(path=p, role=spec.get("role"), answer=spec.get("answer", "echo"))
                for p, spec in people.get("iflows", {}).items()},
        token_validity=int(oauth.get("token-validity", 3600)))


def _role_templates(xs: dict[str, Any], base: str, xsappname: str) -> dict[str, frozenset[str]]:
    return {f"{base}.{t['name']}": frozenset(s.replace("$XSAPPNAME", xsappname)
                                             for s in t.get("scope-references", []))
            for t in xs.get("role-templates", [])}


def _local_redirects(patterns: list[str], origins: tuple[str, ...]) -> tuple[str, ...]:
    """The deployed redirect URIs, plus each of their paths on the local gateway origins.

    Deployed URIs name cloud routes (``https://*.cfapps.*/login/callback``); locally the
    gateway answers on loopback, so ``<origin>/login/callback`` is registered too, exactly.
    """
    local = [origin.rstrip("/") + urlsplit(p).path for p in patterns for origin in origins]
    return tuple(dict.fromkeys([*patterns, *local]))


def _json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def _secrets(path: Path | None) -> dict[str, str]:
    names = ("app", "cpi", "ias")
    if path is not None and path.exists():
        saved = json.loads(path.read_text())
        if all(n in saved for n in names):
            return saved
    made = {n: secrets.token_urlsafe(24) for n in names}
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(made))
        path.chmod(0o600)
    return made
