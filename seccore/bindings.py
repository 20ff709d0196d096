"""Service bindings from ``VCAP_SERVICES``, parsed into typed, immutable credentials.

Services are found by label, as on Cloud Foundry: ``xsuaa``, ``identity`` (SAP Cloud
Identity Services, IAS) and ``it-rt`` (SAP Cloud Integration runtime, credentials under
``oauth``). A user-provided service that holds a copied CPI service key can be named with
``CPI_SERVICE_NAME``. Every problem is collected and reported at once in a ConfigError.
Secrets and private keys are kept out of ``repr``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import cfenv

from seccore.errors import ConfigError

__all__ = [
    "Bindings",
    "ClientCredentials",
    "CpiBinding",
    "IasBinding",
    "IdentityBindings",
    "XsuaaBinding",
    "load_bindings",
    "load_identity_bindings",
]


@dataclass(frozen=True)
class ClientCredentials:
    """An OAuth client: a secret, or an X.509 certificate and its private key (mTLS)."""

    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    certificate: str | None = field(default=None, repr=False)
    key: str | None = field(default=None, repr=False)

    @property
    def is_x509(self) -> bool:
        return self.certificate is not None


@dataclass(frozen=True)
class XsuaaBinding:
    name: str
    credentials: ClientCredentials
    xsappname: str
    uaadomain: str
    url: str
    #: the subaccount's zone (``zoneid``/``identityzoneid``); XSUAA tokens must carry it as ``zid``
    zone_id: str = ""

    @property
    def client_id(self) -> str:
        return self.credentials.client_id


@dataclass(frozen=True)
class IasBinding:
    name: str
    credentials: ClientCredentials
    url: str
    domains: tuple[str, ...]
    app_tid: str | None = None

    @property
    def client_id(self) -> str:
        return self.credentials.client_id


@dataclass(frozen=True)
class CpiBinding:
    name: str
    credentials: ClientCredentials
    #: the CPI runtime, e.g. https://<sub>.it-cpi0xx-rt.cfapps.<region>.hana.ondemand.com
    url: str
    #: the full token endpoint, e.g. https://<sub>.authentication.<region>.hana.ondemand.com/oauth/token
    tokenurl: str

    @property
    def client_id(self) -> str:
        return self.credentials.client_id

    @property
    def broker_xsappname(self) -> str | None:
        """The CPI runtime's xsappname, the prefix of its role scopes.

        A broker clone's client id is ``sb-<guid>!b<n>|<broker xsappname>``, e.g.
        ``sb-…!b1|it-rt-mysub!b196``; the scope for role R is ``it-rt-mysub!b196.R``.
        """
        _, bar, broker = self.client_id.partition("|")
        return broker if bar and broker else None


@dataclass(frozen=True)
class Bindings:
    cpi: CpiBinding
    xsuaa: XsuaaBinding | None = None
    ias: IasBinding | None = None


@dataclass(frozen=True)
class IdentityBindings:
    """What the gateway is bound to: the identity services users log in with."""

    xsuaa: XsuaaBinding | None = None
    ias: IasBinding | None = None


def load_identity_bindings(environ: Mapping[str, str]) -> IdentityBindings:
    """The ``xsuaa`` and ``identity`` bindings only (the gateway has no CPI binding)."""
    problems: list[str] = []
    identity = _identity(_services(environ, problems), problems)
    if problems:
        raise ConfigError(problems)
    return identity


def load_bindings(environ: Mapping[str, str]) -> Bindings:
    """Parse ``VCAP_SERVICES`` of ``environ``; raise ConfigError listing every problem."""
    problems: list[str] = []
    services = _services(environ, problems)
    identity = _identity(services, problems)
    cpi_svc = _one(services, "it-rt", environ.get("CPI_SERVICE_NAME") or None, problems)
    cpi = _cpi(cpi_svc, problems) if cpi_svc else None
    if cpi_svc is None and not any("it-rt" in p for p in problems):
        problems.append("no 'it-rt' (SAP Cloud Integration runtime) service is bound: "
                        "bind the CPI instance created from config-cpi.json")
    if identity.xsuaa is None and identity.ias is None and not problems:
        problems.append("neither an 'xsuaa' nor an 'identity' service is bound: bind at least one, "
                        "it decides which users' tokens this app accepts")
    if problems:
        raise ConfigError(problems)
    assert cpi is not None  # every path without a cpi binding added a problem
    return Bindings(cpi=cpi, xsuaa=identity.xsuaa, ias=identity.ias)


def _identity(services: list[cfenv.Service], problems: list[str]) -> IdentityBindings:
    xsuaa_svc = _one(services, "xsuaa", None, problems)
    ias_svc = _one(services, "identity", None, problems)
    return IdentityBindings(xsuaa=_xsuaa(xsuaa_svc, problems) if xsuaa_svc else None,
                            ias=_ias(ias_svc, problems) if ias_svc else None)


def _services(environ: Mapping[str, str], problems: list[str]) -> list[cfenv.Service]:
    raw = environ.get("VCAP_SERVICES") or "{}"
    try:
        data = json.loads(raw)
        return [cfenv.Service(each) for group in data.values() for each in group]
    except (ValueError, AttributeError, TypeError):
        problems.append("VCAP_SERVICES is not valid JSON of the form {label: [service, ...]}")
        return []


def _one(services: list[cfenv.Service], label: str, name: str | None,
         problems: list[str]) -> cfenv.Service | None:
    if name is not None:
        found = [s for s in services if s.name == name]
        if not found:
            problems.append(f"CPI_SERVICE_NAME={name!r} names no bound service")
        return found[0] if found else None
    found = [s for s in services if cfenv.match(s.env.get("label"), label)]
    if len(found) > 1:
        names = ", ".join(repr(s.name) for s in found)
        problems.append(f"{len(found)} '{label}' services are bound ({names}); bind exactly one")
        return None
    return found[0] if found else None


def _client(svc: cfenv.Service, creds: Mapping[str, Any], problems: list[str]) -> ClientCredentials:
    client_id = creds.get("clientid")
    if not isinstance(client_id, str) or not client_id:
        problems.append(f"service {svc.name!r}: credentials lack 'clientid'")
        client_id = ""
    cert, key, secret = creds.get("certificate"), creds.get("key"), creds.get("clientsecret")
    if cert:
        if not key:
            problems.append(f"service {svc.name!r}: an X.509 certificate without its private 'key' "
                            "(an external certificate); create a binding or key with a generated certificate")
        return ClientCredentials(client_id, certificate=_pem(cert), key=_pem(key) if key else None)
    if not secret:
        problems.append(f"service {svc.name!r}: credentials have neither 'clientsecret' "
                        "nor 'certificate' + 'key'")
    return ClientCredentials(client_id, client_secret=secret or None)


def _pem(text: str) -> str:
    # Service keys copied from the cockpit often carry literal "\n" instead of line breaks.
    return text.replace("\\n", "\n")


def _https(svc: cfenv.Service, creds: Mapping[str, Any], key: str, problems: list[str]) -> str:
    value = creds.get(key)
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme != "https" or not parts.hostname or parts.username:
        problems.append(f"service {svc.name!r}: '{key}' must be an https URL without user info")
        return ""
    return str(value).rstrip("/")


def _xsuaa(svc: cfenv.Service, problems: list[str]) -> XsuaaBinding:
    creds = svc.credentials
    for key in ("xsappname", "uaadomain"):
        if not creds.get(key):
            problems.append(f"service {svc.name!r}: xsuaa credentials lack '{key}'")
    if not (creds.get("zoneid") or creds.get("identityzoneid")):
        problems.append(f"service {svc.name!r}: xsuaa credentials lack 'zoneid' (or 'identityzoneid'), "
                        "the subaccount whose tokens are accepted")
    return XsuaaBinding(
        name=svc.name or "xsuaa",
        credentials=_client(svc, creds, problems),
        xsappname=creds.get("xsappname", ""),
        uaadomain=str(creds.get("uaadomain", "")).removeprefix("https://").rstrip("/"),
        url=_https(svc, creds, "url", problems),
        zone_id=creds.get("zoneid") or creds.get("identityzoneid") or "",
    )


def _ias(svc: cfenv.Service, problems: list[str]) -> IasBinding:
    creds = svc.credentials
    domains = creds.get("domains") or ([creds["domain"]] if creds.get("domain") else [])
    if not domains or not all(isinstance(d, str) and d for d in domains):
        problems.append(f"service {svc.name!r}: identity credentials lack 'domains'")
    return IasBinding(
        name=svc.name or "identity",
        credentials=_client(svc, creds, problems),
        url=_https(svc, creds, "url", problems),
        domains=tuple(d.lower() for d in domains if isinstance(d, str)),
        app_tid=creds.get("app_tid") or creds.get("zone_uuid") or None,
    )


def _cpi(svc: cfenv.Service, problems: list[str]) -> CpiBinding:
    # The it-rt binding nests the client under "oauth"; a copied service key may be flat.
    creds = svc.credentials.get("oauth", svc.credentials)
    return CpiBinding(
        name=svc.name or "it-rt",
        credentials=_client(svc, creds, problems),
        url=_https(svc, creds, "url", problems),
        tokenurl=_https(svc, creds, "tokenurl", problems),
    )
