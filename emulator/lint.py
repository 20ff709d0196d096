"""``python -m emulator lint``: the mistakes the SAP tutorials warn about, found before deploying.

It reads the files we deploy (``xs-security.json``, ``config-cpi.json``, ``config-ias.json``)
and the emulator's users file (what the cockpit holds: role collections, group mappings,
the deployed iFlows) and reports, one line each, ``file: problem — fix``:

- files that are missing, not JSON, or carry a misspelt key (which BTP silently ignores);
- an identity instance without ``"xsuaa-cross-consumption": true`` (the exchange fails);
- an it-rt instance without the jwt-bearer grant type (the exchange fails);
- an iFlow sender adapter role that ``config-cpi.json`` does not list, or that differs from
  the role the app checks (``CPI_ROLE``, by default the first of ``roles``);
- roles in no role collection, role collections naming unknown roles, group mappings naming
  unknown role collections;
- scopes nothing uses, role templates naming unknown scopes;
- missing ``redirect-uris`` (the login through the gateway fails).

``lint()`` only reads; ``main()`` prints and returns the exit status.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Finding", "lint", "main"]

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
#: The app's IFLOW_PATH default (app/settings.py): the iFlow the app calls and whose role it checks.
APP_IFLOW_PATH = "/http/ntif"
#: How users.json names a role of config-cpi.json in a role collection.
CPI_PREFIX = "it-rt."
#: The gateway's login callback on Cloud Foundry, the example of the redirect-uris fix.
REDIRECT_EXAMPLE = '"redirect-uris": ["https://*.cfapps.*.hana.ondemand.com/login/callback"]'

XS, CPI, IAS = "xs-security.json", "config-cpi.json", "config-ias.json"

#: Keys the services (or the emulator) know; an unknown key close to one of them is a typo
#: that BTP ignores without a word. Unknown keys far from all of them are left alone.
_KEYS: dict[str, frozenset[str]] = {
    XS: frozenset({"xsappname", "tenant-mode", "description", "scopes", "attributes", "role-templates",
                   "role-collections", "authorities", "authorities-inheritance", "oauth2-configuration",
                   "foreign-scope-references"}),
    CPI: frozenset({"grant-types", "redirect-uris", "roles", "token-validity", "refresh-token-validity"}),
    IAS: frozenset({"display-name", "name", "xsuaa-cross-consumption", "oauth2-configuration", "multi-tenant",
                    "consumed-services", "provided-apis", "authorization", "home-url",
                    "subject-name-identifier", "assertion-attributes", "default-attributes", "catalog"}),
    "users": frozenset({"_comment", "users", "role_collections", "group_mappings", "iflows"}),
}
_OAUTH_KEYS = frozenset({"redirect-uris", "post-logout-redirect-uris", "front-channel-logout-uris",
                         "back-channel-logout-uris", "token-validity", "refresh-token-validity",
                         "grant-types", "credential-types", "credential-type", "token-policy", "autoapprove",
                         "system-attributes", "allowedproviders", "public-client"})
_PURPOSE = {
    XS: "the parameters of the xsuaa instance (cf create-service xsuaa application frontapp-xsuaa "
        "-c xs-security.json)",
    CPI: "the parameters of the it-rt instance (cf create-service it-rt integration-flow frontapp-cpi "
         "-c config-cpi.json)",
    IAS: "the parameters of the identity instance (cf create-service identity application frontapp-ias "
         "-c config-ias.json)",
    "users": "the emulator's users, role collections, group mappings and iFlows (see emulator/users.json)",
}


@dataclass(frozen=True)
class Finding:
    file: str
    problem: str
    fix: str

    def __str__(self) -> str:
        return f"{self.file}: {self.problem} — {self.fix}"


def main(root: Path, users: Path) -> int:
    """Print every finding, one a line; 1 if there is any, else 0."""
    findings = lint(root, users)
    for finding in findings:
        print(finding)
    if not findings:
        print("no problems found")
    return 1 if findings else 0


def lint(root: Path, users: Path) -> list[Finding]:
    """Every problem of the deploy files in ``root`` and of the users file."""
    return _Linter(root, users).run()


class _Linter:
    def __init__(self, root: Path, users: Path) -> None:
        self.root, self.users_path = root, users
        self.names = {XS: XS, CPI: CPI, IAS: IAS, "users": _display(users, root)}
        self.findings: list[Finding] = []
        #: keys present only misspelt, per file (and "<file>/oauth2-configuration"): already reported
        self.typos: dict[str, set[str]] = {}

    def add(self, file: str, problem: str, fix: str) -> None:
        self.findings.append(Finding(self.names.get(file, file), problem, fix))

    def run(self) -> list[Finding]:
        xs = self.load(XS, self.root / XS)
        cpi = self.load(CPI, self.root / CPI)
        ias = self.load(IAS, self.root / IAS)
        people = self.load("users", self.users_path)
        if ias is not None:
            self.check_ias(ias)
        roles = self.check_xs(xs) if xs is not None else None
        cpi_roles = self.check_cpi(cpi) if cpi is not None else None
        if people is not None:
            self.check_users(people, xs_roles=roles, cpi_roles=cpi_roles)
        return self.findings

    # -- files ---------------------------------------------------------------------------------

    def load(self, file: str, path: Path) -> dict[str, Any] | None:
        if not path.is_file():
            self.add(file, "not found", f"create it: {_PURPOSE[file]}")
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            self.add(file, "is not UTF-8 text", "save it as UTF-8 JSON")
            return None
        except json.JSONDecodeError as exc:
            self.add(file, f"is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})",
                     "correct the syntax: the service (or the emulator) refuses the whole file")
            return None
        if not isinstance(data, dict):
            self.add(file, f"is a JSON {type(data).__name__}, not an object", "make it one JSON object {...}")
            return None
        self.typos[file] = self.misspelt(file, data, _KEYS[file], "")
        return data

    def misspelt(self, file: str, data: dict[str, Any], known: frozenset[str], where: str) -> set[str]:
        """Report keys that look like a misspelt known key; return the known keys meant."""
        meant: set[str] = set()
        for key in data:
            if key in known:
                continue
            close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.8)
            if close and close[0] not in data:
                meant.add(close[0])
                self.add(file, f'unknown key "{where}{key}" (a misspelt "{close[0]}"?) is ignored',
                         f'rename it to "{close[0]}"')
        return meant

    def oauth(self, file: str, data: dict[str, Any]) -> tuple[dict[str, Any], set[str]] | None:
        """``oauth2-configuration`` and its misspelt keys; None when it is itself misspelt."""
        if "oauth2-configuration" in self.typos[file]:
            return None
        oauth = data.get("oauth2-configuration")
        if not isinstance(oauth, dict):
            return {}, set()
        return oauth, self.misspelt(file, oauth, _OAUTH_KEYS, "oauth2-configuration.")

    def redirect_uris(self, file: str, data: dict[str, Any], service: str) -> None:
        found = self.oauth(file, data)
        if found is None or "redirect-uris" in found[1]:
            return
        uris = found[0].get("redirect-uris")
        if not _strings(uris) or not uris:
            self.add(file, f'no "redirect-uris" in "oauth2-configuration": {service} refuses to send the '
                           "login back to the gateway",
                     f'add "oauth2-configuration": {{{REDIRECT_EXAMPLE}}} (the gateway\'s /login/callback)')

    # -- config-ias.json -----------------------------------------------------------------------

    def check_ias(self, ias: dict[str, Any]) -> None:
        value = ias.get("xsuaa-cross-consumption")
        if value is not True and "xsuaa-cross-consumption" not in self.typos[IAS]:
            what = ('no "xsuaa-cross-consumption": true' if value is None
                    else f'"xsuaa-cross-consumption" is {json.dumps(value)}, not true')
            self.add(IAS, f"{what}: IAS tokens lack the audience of the subaccount's XSUAA, which then "
                          "refuses the jwt-bearer exchange (502 at /homepage)",
                     'set "xsuaa-cross-consumption": true, cf update-service frontapp-ias '
                     "-c config-ias.json, and rebind the app")
        self.redirect_uris(IAS, ias, "IAS")

    # -- xs-security.json ----------------------------------------------------------------------

    def check_xs(self, xs: dict[str, Any]) -> set[str] | None:
        """Check scopes and role templates; return the role references users.json may use
        (``<xsappname>.<template>``), or None when they cannot be known."""
        base = xs.get("xsappname")
        if not isinstance(base, str) or not base:
            if "xsappname" not in self.typos[XS]:
                self.add(XS, 'no "xsappname"',
                         'add "xsappname": "frontapp": role collections name roles by it')
            base = None
        scopes = self.scopes(xs)
        templates = self.templates(xs)
        self.redirect_uris(XS, xs, "XSUAA")
        if scopes is None or templates is None:
            return None
        referenced: set[str] = set()
        for template, refs in templates.items():
            for ref in refs:
                if ref in scopes or not ref.startswith("$XSAPPNAME."):
                    referenced.add(ref)  # foreign references ($XSAPPNAME of other apps) are not ours
                    continue
                close = difflib.get_close_matches(ref, scopes, n=1, cutoff=0.8)
                referenced.update(close)
                self.add(XS, f'role template "{template}" refers to the unknown scope "{ref}"'
                             + (f' (a misspelt "{close[0]}"?)' if close else "")
                             + ": XSUAA refuses the file",
                         f'change it to "{close[0]}"' if close else 'define it under "scopes" or remove it')
        # Whether a route uses a scope is said by the gateway's xs-app.json, which does not exist
        # yet. Until it does, a scope counts as used when a role template references it (a user
        # can get it) or it is the app's required scope (REQUIRED_SCOPE, by default the first
        # scope, which the app demands of every XSUAA token).
        required = scopes[0] if scopes else None
        for scope in scopes:
            if scope in referenced:
                continue
            if scope == required:
                self.add(XS, f'the app\'s required scope "{scope}" (REQUIRED_SCOPE default: the first '
                             "scope) is in no role template: every XSUAA token lacks it, the app answers 403",
                         f'add "{scope}" to the "scope-references" of a role template')
            else:
                self.add(XS, f'scope "{scope}" is used by nothing: no role template references it and the '
                             "app does not require it (routes of xs-app.json arrive with the gateway)",
                         "reference it from a role template, or delete it")
        return None if base is None else {f"{base}.{t}" for t in templates}

    def scopes(self, xs: dict[str, Any]) -> list[str] | None:
        if "scopes" in self.typos[XS]:
            return None
        scopes = xs.get("scopes", [])
        if not isinstance(scopes, list) or not all(isinstance(s, dict) and isinstance(s.get("name"), str)
                                                   for s in scopes):
            self.add(XS, '"scopes" is not a list of {"name": ..., "description": ...}',
                     'write each scope as {"name": "$XSAPPNAME.<name>", "description": "..."}')
            return None
        return [s["name"] for s in scopes]

    def templates(self, xs: dict[str, Any]) -> dict[str, list[str]] | None:
        if "role-templates" in self.typos[XS]:
            return None
        templates = xs.get("role-templates", [])
        if not isinstance(templates, list) or not all(
                isinstance(t, dict) and isinstance(t.get("name"), str)
                and _strings(t.get("scope-references", [])) for t in templates):
            self.add(XS, '"role-templates" is not a list of {"name": ..., "scope-references": [...]}',
                     'write each role template as {"name": "<name>", '
                     '"scope-references": ["$XSAPPNAME.<scope>"]}')
            return None
        return {t["name"]: list(t.get("scope-references", [])) for t in templates}

    # -- config-cpi.json -----------------------------------------------------------------------

    def check_cpi(self, cpi: dict[str, Any]) -> list[str] | None:
        """Check grant types and roles; return the roles, or None when they cannot be known."""
        if "grant-types" not in self.typos[CPI]:
            grants = cpi.get("grant-types")
            if grants is None:
                self.add(CPI, 'no "grant-types": the it-rt client gets client_credentials only, so XSUAA '
                              "refuses the exchange of the user's token (502 at /homepage)",
                         f'add "grant-types": ["client_credentials", "{JWT_BEARER}"], cf update-service '
                         "frontapp-cpi -c config-cpi.json, and recreate the binding")
            elif not _strings(grants) or JWT_BEARER not in grants:
                self.add(CPI, f'"grant-types" lacks "{JWT_BEARER}": XSUAA refuses the exchange of the '
                              "user's token (502 at /homepage)",
                         "add it, cf update-service frontapp-cpi -c config-cpi.json, "
                         "and recreate the binding")
        if "roles" in self.typos[CPI]:
            return None
        roles = cpi.get("roles", [])
        if not _strings(roles):
            self.add(CPI, '"roles" is not a list of role names', 'write it as "roles": ["Ntif.Read"]')
            return None
        if not roles:
            self.add(CPI, 'no "roles": no token of the it-rt client can carry the role of the iFlow\'s '
                          "sender adapter, and the app checks none (CPI_ROLE)",
                     'add the sender adapter\'s role, e.g. "roles": ["Ntif.Read"]')
        return roles

    # -- users.json ----------------------------------------------------------------------------

    def check_users(self, people: dict[str, Any], *, xs_roles: set[str] | None,
                    cpi_roles: list[str] | None) -> None:
        self.check_people(people)
        collections = self.mapping(people, "role_collections", "role collection", "role references")
        groups = self.mapping(people, "group_mappings", "group", "role collection names")
        known: set[str] = set()
        if xs_roles is not None:
            known |= xs_roles
        if cpi_roles is not None:
            known |= {CPI_PREFIX + r for r in cpi_roles}
        meant: set[str] = set()
        if collections is not None:
            for name, refs in collections.items():
                for ref in refs:
                    is_cpi = ref.startswith(CPI_PREFIX)
                    if ref in known or (cpi_roles if is_cpi else xs_roles) is None:
                        continue  # known, or its file is broken (reported there)
                    close = difflib.get_close_matches(ref, sorted(known), n=1, cutoff=0.8)
                    meant.update(close)
                    self.add("users", f'role collection "{name}" refers to the unknown role "{ref}"'
                                      + (f' (a misspelt "{close[0]}"?)' if close else ""),
                             f'change it to "{close[0]}"' if close else
                             f'name a role as "<xsappname>.<role template>" ({XS}) or "it-rt.<role>" ({CPI})')
            assigned = {ref for refs in collections.values() for ref in refs} | meant
            for ref in sorted(known - assigned):
                if ref.startswith(CPI_PREFIX):
                    what = f'the CPI role "{ref.removeprefix(CPI_PREFIX)}" of {CPI}'
                else:
                    what = f'the role template "{ref.split(".", 1)[1]}" of {XS}'
                self.add("users", f"{what} is in no role collection: no user can get it",
                         f'add "{ref}" to a role collection of "role_collections" and map that to a group in '
                         '"group_mappings" (on BTP: a role collection mapped to the users\' IAS group)')
        if collections is not None and groups is not None:
            for group, names in groups.items():
                for name in names:
                    if name in collections:
                        continue
                    close = difflib.get_close_matches(name, sorted(collections), n=1, cutoff=0.8)
                    self.add("users", f'group "{group}" maps to the unknown role collection "{name}"'
                                      + (f' (a misspelt "{close[0]}"?)' if close else ""),
                             f'change it to "{close[0]}"' if close else
                             'define it under "role_collections" or remove the mapping')
        self.check_iflows(people, cpi_roles)

    def check_people(self, people: dict[str, Any]) -> None:
        if "users" in self.typos["users"]:
            return
        users = people.get("users", [])
        if not isinstance(users, list) or not users:
            self.add("users", 'no "users"', 'add "users": [{"name": ..., "password": ..., "email": ..., '
                                            '"groups": [...]}]')
            return
        for i, user in enumerate(users):
            if not isinstance(user, dict):
                self.add("users", f"users[{i}] is not an object", 'write it as {"name": ..., "email": ...}')
                continue
            for key in ("name", "email"):
                if not isinstance(user.get(key), str) or not user[key]:
                    self.add("users", f'users[{i}] has no "{key}"',
                             "add it: the emulator needs a name and an email "
                             "(the password defaults to the name)")
            if not _strings(user.get("groups", [])):
                self.add("users", f'the "groups" of users[{i}] are not a list of group names',
                         'write them as "groups": ["frontapp_users"]')

    def mapping(self, people: dict[str, Any], key: str, what: str,
                values: str) -> dict[str, list[str]] | None:
        if key in self.typos["users"]:
            return None
        mapping = people.get(key, {})
        if not isinstance(mapping, dict) or not all(_strings(v) for v in mapping.values()):
            self.add("users", f'"{key}" is not an object of {what} → list of {values}',
                     f'write it as "{key}": {{"<{what}>": ["..."]}}')
            return None
        return mapping

    def check_iflows(self, people: dict[str, Any], cpi_roles: list[str] | None) -> None:
        if "iflows" in self.typos["users"]:
            return
        iflows = people.get("iflows", {})
        if not isinstance(iflows, dict) or not all(
                isinstance(s, dict) and isinstance(s.get("role"), str | None) for s in iflows.values()):
            self.add("users", '"iflows" is not an object of address → {"role": <role or null>}',
                     'write it as "iflows": {"/http/ntif": {"role": "Ntif.Read"}}')
            return
        app_iflow = next((spec for path, spec in iflows.items() if path.lower() == APP_IFLOW_PATH), None)
        if app_iflow is None:
            self.add("users", f"no iFlow at {APP_IFLOW_PATH}, the app's IFLOW_PATH default: the emulated CPI "
                              "answers 404",
                     f'add "{APP_IFLOW_PATH}": {{"role": "<a role of {CPI}>"}} to "iflows", '
                     "or set IFLOW_PATH")
        if not cpi_roles:
            return  # unknown or none: reported with config-cpi.json
        for path, spec in iflows.items():
            role = spec.get("role")
            if role is not None and role not in cpi_roles:
                self.add(CPI, f'"roles" lacks "{role}", the sender adapter role of the iFlow {path} '
                              f"({self.names['users']}): no exchanged token carries it, CPI answers 403",
                         f'add "{role}" to "roles" and cf update-service frontapp-cpi -c config-cpi.json, '
                         "or give the adapter a role of \"roles\"")
        role = app_iflow.get("role") if app_iflow is not None else None
        if role in cpi_roles and role != cpi_roles[0]:
            self.add(CPI, f'the app checks the first of "roles", "{cpi_roles[0]}" (CPI_ROLE default), '
                          f'but the iFlow {APP_IFLOW_PATH} requires "{role}": users with one but not the '
                          "other get 403",
                     f'put "{role}" first in "roles", or set CPI_ROLE={role}')


def _strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _display(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)
