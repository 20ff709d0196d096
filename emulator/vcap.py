"""``VCAP_SERVICES`` for the app and the gateway, in the shapes Cloud Foundry writes them
(btp-security.md §4), pointing at the emulator."""

from __future__ import annotations

from typing import Any

from emulator.config import EmulatorConfig

__all__ = ["destinations", "vcap_services"]


def vcap_services(cfg: EmulatorConfig, *, x509_cert: str | None = None, x509_key: str | None = None,
                  with_ias: bool = True, with_xsuaa: bool = True,
                  verification_key: str = "") -> dict[str, list[dict[str, Any]]]:
    """The bindings of frontapp: it-rt (secret, or x509 when a client certificate is given),
    xsuaa and identity."""
    urls = cfg.urls
    cpi: dict[str, Any] = {"clientid": cfg.cpi.client_id, "url": urls.cpi,
                           "tokenurl": f"{urls.xsuaa}/oauth/token", "createdate": "2026-11-22T00:00:00Z"}
    if x509_cert and x509_key:
        cpi.update(certificate=x509_cert, key=x509_key)
    else:
        cpi["clientsecret"] = cfg.cpi.secret
    services: dict[str, list[dict[str, Any]]] = {
        "it-rt": [_service("it-rt", "frontapp-cpi", "integration-flow", {"oauth": cpi})],
    }
    if with_xsuaa:
        services["xsuaa"] = [_service("xsuaa", "frontapp-xsuaa", "application", {
            "clientid": cfg.app.client_id, "clientsecret": cfg.app.secret, "xsappname": cfg.app.xsappname,
            "uaadomain": urls.uaadomain, "url": urls.xsuaa, "identityzone": cfg.subdomain,
            "identityzoneid": cfg.zone_id, "zoneid": cfg.zone_id, "tenantid": cfg.zone_id,
            "subaccountid": cfg.subaccount_id, "tenantmode": "dedicated", "verificationkey": verification_key,
            "credential-type": "binding-secret", "sburl": urls.xsuaa, "apiurl": urls.xsuaa})]
    if with_ias:
        services["identity"] = [_service("identity", "frontapp-ias", "application", {
            "clientid": cfg.ias_app.client_id, "clientsecret": cfg.ias_app.secret, "url": urls.ias,
            "domains": [urls.ias_domain], "app_tid": cfg.zone_id, "credential-type": "SECRET"})]
    return services


def _service(label: str, name: str, plan: str, credentials: dict[str, Any]) -> dict[str, Any]:
    return {"label": label, "provider": None, "plan": plan, "name": name, "tags": [label],
            "instance_name": name, "binding_name": None, "credentials": credentials,
            "syslog_drain_url": None, "volume_mounts": []}


def destinations(app_url: str) -> list[dict[str, Any]]:
    """The ``destinations`` variable of the gateway, as approuter reads it: the app, with
    the user's token forwarded."""
    return [{"name": "frontapp", "url": app_url, "forwardAuthToken": True, "timeout": 60000}]
