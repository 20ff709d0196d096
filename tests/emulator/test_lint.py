"""``python -m emulator lint``: the shipped files are clean, and each mistake the tutorials warn
about, made alone in a copy of them, gives exactly its own finding."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from app.settings import DEFAULT_IFLOW_PATH
from emulator import lint as lint_module
from emulator.__main__ import main as emulator_main
from emulator.lint import Finding, lint, main

ROOT = Path(__file__).resolve().parents[2]
XS, CPI, IAS, USERS = "xs-security.json", "config-cpi.json", "config-ias.json", "emulator/users.json"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
CPI_RC = "CPI_Notification_Reader"  # the role collection with the CPI role

Edit = Callable[[dict[str, Any]], None]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A copy of the deploy files and the users file, laid out as in the repository."""
    for name in (XS, CPI, IAS, USERS):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / name, tmp_path / name)
    return tmp_path


def edit(name: str, change: Edit) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        data = json.loads((root / name).read_text())
        change(data)
        (root / name).write_text(json.dumps(data))
    return apply


def edits(*steps: Callable[[Path], None]) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        for step in steps:
            step(root)
    return apply


def write(name: str, text: str) -> Callable[[Path], None]:
    return lambda root: (root / name).write_text(text)


def rename(data: dict[str, Any], old: str, new: str) -> None:
    data[new] = data.pop(old)


def users_of(root: Path) -> Path:
    return root / USERS


MISTAKES: list[tuple[str, Callable[[Path], None], str, str]] = [
    # (id, the one mistake, the file of the finding, a part of its problem)
    ("ias-cross-consumption-false", edit(IAS, lambda d: d.update({"xsuaa-cross-consumption": False})),
     IAS, '"xsuaa-cross-consumption" is false, not true'),
    ("ias-cross-consumption-missing", edit(IAS, lambda d: d.pop("xsuaa-cross-consumption")),
     IAS, 'no "xsuaa-cross-consumption": true'),
    ("ias-cross-consumption-string", edit(IAS, lambda d: d.update({"xsuaa-cross-consumption": "true"})),
     IAS, '"xsuaa-cross-consumption" is "true", not true'),
    ("ias-cross-consumption-misspelt",
     edit(IAS, lambda d: rename(d, "xsuaa-cross-consumption", "xsuaa-cross-consumtion")),
     IAS, 'unknown key "xsuaa-cross-consumtion" (a misspelt "xsuaa-cross-consumption"?)'),
    ("ias-redirect-uris-missing", edit(IAS, lambda d: d["oauth2-configuration"].pop("redirect-uris")),
     IAS, 'no "redirect-uris" in "oauth2-configuration": IAS refuses'),
    ("ias-redirect-uris-misspelt",
     edit(IAS, lambda d: rename(d["oauth2-configuration"], "redirect-uris", "redirect-uri")),
     IAS, 'unknown key "oauth2-configuration.redirect-uri"'),
    ("xs-redirect-uris-empty", edit(XS, lambda d: d["oauth2-configuration"].update({"redirect-uris": []})),
     XS, 'no "redirect-uris" in "oauth2-configuration": XSUAA refuses'),
    ("cpi-grant-types-without-jwt-bearer", edit(CPI, lambda d: d["grant-types"].remove(JWT_BEARER)),
     CPI, f'"grant-types" lacks "{JWT_BEARER}"'),
    ("cpi-grant-types-missing", edit(CPI, lambda d: d.pop("grant-types")),
     CPI, 'no "grant-types": the it-rt client gets client_credentials only'),
    ("cpi-grant-types-misspelt", edit(CPI, lambda d: rename(d, "grant-types", "grant_types")),
     CPI, 'unknown key "grant_types" (a misspelt "grant-types"?)'),
    ("iflow-role-not-in-cpi-roles", edit(USERS, lambda d: d["iflows"]["/http/ntif"].update(role="Ntif.Send")),
     CPI, '"roles" lacks "Ntif.Send", the sender adapter role of the iFlow /http/ntif'),
    ("cpi-role-in-no-collection", edit(CPI, lambda d: d["roles"].append("Ntif.Write")),
     USERS, 'the CPI role "Ntif.Write" of config-cpi.json is in no role collection'),
    ("app-cpi-role-differs-from-iflow-role",
     edits(edit(CPI, lambda d: d.update(roles=["Ntif.Write", "Ntif.Read"])),
           edit(USERS, lambda d: d["role_collections"][CPI_RC].append("it-rt.Ntif.Write"))),
     CPI, 'the app checks the first of "roles", "Ntif.Write" (CPI_ROLE default), but the iFlow /http/ntif '
          'requires "Ntif.Read"'),
    ("cpi-no-roles",
     edits(edit(CPI, lambda d: d.update(roles=[])),
           edit(USERS, lambda d: (d["role_collections"].pop(CPI_RC), d["group_mappings"].pop(CPI_RC)))),
     CPI, 'no "roles"'),
    ("role-template-in-no-collection",
     edit(XS, lambda d: d["role-templates"].append({"name": "Admin",
                                                    "scope-references": ["$XSAPPNAME.Display"]})),
     USERS, 'the role template "Admin" of xs-security.json is in no role collection'),
    ("scope-used-by-nothing", edit(XS, lambda d: d["scopes"].append({"name": "$XSAPPNAME.Admin"})),
     XS, 'scope "$XSAPPNAME.Admin" is used by nothing'),
    ("required-scope-in-no-role-template", edit(XS, lambda d: d["role-templates"][0].update(
        {"scope-references": []})),
     XS, 'the app\'s required scope "$XSAPPNAME.Display" (REQUIRED_SCOPE default: the first scope) is in no '
         "role template"),
    ("role-template-unknown-scope",
     edit(XS, lambda d: d["role-templates"][0]["scope-references"].append("$XSAPPNAME.Admin")),
     XS, 'role template "Viewer" refers to the unknown scope "$XSAPPNAME.Admin": XSUAA refuses'),
    ("role-template-misspelt-scope",
     edit(XS, lambda d: d["role-templates"][0].update({"scope-references": ["$XSAPPNAME.Dispaly"]})),
     XS, 'refers to the unknown scope "$XSAPPNAME.Dispaly" (a misspelt "$XSAPPNAME.Display"?)'),
    ("collection-misspelt-role",
     edit(USERS, lambda d: d["role_collections"].update(frontapp_Viewer=["frontapp.Viewr"])),
     USERS, 'role collection "frontapp_Viewer" refers to the unknown role "frontapp.Viewr" '
            '(a misspelt "frontapp.Viewer"?)'),
    ("collection-unknown-role",
     edit(USERS, lambda d: d["role_collections"][CPI_RC].append("it-rt.ESBMessaging.send")),
     USERS, 'role collection "CPI_Notification_Reader" refers to the unknown role "it-rt.ESBMessaging.send"'),
    ("group-mapping-unknown-collection",
     edit(USERS, lambda d: d["group_mappings"]["frontapp_users"].append("Subaccount Administrator")),
     USERS, 'group "frontapp_users" maps to the unknown role collection "Subaccount Administrator"'),
    ("no-iflow-at-app-path", edit(USERS, lambda d: rename(d["iflows"], "/http/ntif", "/http/other")),
     USERS, "no iFlow at /http/ntif, the app's IFLOW_PATH default"),
    ("user-without-email", edit(USERS, lambda d: d["users"][1].pop("email")),
     USERS, 'users[1] has no "email"'),
    ("xs-invalid-json", write(XS, '{"xsappname": "frontapp",}'), XS, "is not valid JSON (line 1"),
    ("cpi-invalid-json", write(CPI, "{'roles': []}"), CPI, "is not valid JSON"),
    ("ias-invalid-json", write(IAS, ""), IAS, "is not valid JSON"),
    ("users-invalid-json", write(USERS, '{"users": [}'), USERS, "is not valid JSON"),
    ("xs-not-an-object", write(XS, "[]"), XS, "is a JSON list, not an object"),
    ("ias-missing", lambda root: (root / IAS).unlink(), IAS, "not found"),
]


def test_the_shipped_files_lint_clean() -> None:
    assert lint(ROOT, ROOT / "emulator" / "users.json") == []


def test_the_copy_lints_clean(root: Path) -> None:
    assert lint(root, users_of(root)) == []


@pytest.mark.parametrize(("mistake", "file", "problem"), [m[1:] for m in MISTAKES],
                         ids=[m[0] for m in MISTAKES])
def test_one_mistake_gives_exactly_its_finding(root: Path, mistake: Callable[[Path], None], file: str,
                                               problem: str) -> None:
    mistake(root)
    findings = lint(root, users_of(root))
    assert len(findings) == 1, "\n".join(map(str, findings))
    assert findings[0].file == file
    assert problem in findings[0].problem
    assert findings[0].fix


def test_main_prints_one_line_per_finding_and_exits_1(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit(IAS, lambda d: d.update({"xsuaa-cross-consumption": False}))(root)
    edit(CPI, lambda d: d["grant-types"].remove(JWT_BEARER))(root)
    assert main(root, users_of(root)) == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("config-ias.json: ") and " — set \"xsuaa-cross-consumption\": true" in lines[0]
    assert lines[1].startswith("config-cpi.json: ") and " — add it" in lines[1]


def test_main_says_so_when_clean(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(root, users_of(root)) == 0
    assert capsys.readouterr().out == "no problems found\n"


def test_python_m_emulator_lint_is_wired(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert emulator_main(["lint", "--root", str(root), "--users", str(users_of(root))]) == 0
    write(CPI, "")(root)
    assert emulator_main(["lint", "--root", str(root), "--users", str(users_of(root))]) == 1
    assert capsys.readouterr().out.splitlines()[-1].startswith("config-cpi.json: is not valid JSON")


def test_a_users_file_outside_the_root_is_named_as_given(root: Path, tmp_path_factory: pytest.TempPathFactory
                                                         ) -> None:
    elsewhere = tmp_path_factory.mktemp("users") / "people.json"
    elsewhere.write_text("{")
    assert lint(root, elsewhere) == [Finding(str(elsewhere), "is not valid JSON (line 1, column 2: "
                                             "Expecting property name enclosed in double quotes)",
                                             "correct the syntax: the service (or the emulator) refuses the "
                                             "whole file")]


def test_the_app_iflow_path_is_the_apps_default() -> None:
    assert lint_module.APP_IFLOW_PATH == DEFAULT_IFLOW_PATH
