"""IDP-01: the emulator never ships. ``cf push`` uploads the repository root less what
``.cfignore`` names, and no runtime package imports the emulator (nor the tests)."""

from __future__ import annotations

import ast
import re
from fnmatch import fnmatch
from pathlib import Path, PurePosixPath

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_PACKAGES = ("app", "gateway", "seccore")
DEV_ONLY = ("emulator", "tests", "bench", "fuzz", "docs", "var", "test-artifacts", ".venv", ".git", "dev",
            "requirements-dev.txt")


def cfignore_patterns() -> list[str]:
    lines = (ROOT / ".cfignore").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def ignored(relative: str, patterns: list[str]) -> bool:
    """Whether ``relative`` (a path from the root) is left out: the gitignore subset .cfignore uses
    (``dir/`` anywhere, ``/name`` at the root, ``*.ext`` globs; the test below keeps it to that)."""
    path = PurePosixPath(relative)
    for pattern in patterns:
        directory, anchored = pattern.endswith("/"), pattern.startswith("/")
        name = pattern.strip("/")
        # a directory pattern matches a parent of the path; a plain one the path or a parent
        candidates = path.parents[:-1] if directory else (path, *path.parents[:-1])
        for candidate in candidates:
            if anchored and len(candidate.parts) != 1:
                continue
            if fnmatch(candidate.name, name):
                return True
    return False


def test_the_cfignore_stays_within_the_syntax_this_test_understands() -> None:
    for pattern in cfignore_patterns():
        assert not pattern.startswith("!") and "**" not in pattern, pattern
        assert "/" not in pattern.strip("/"), f"{pattern}: nested paths are not modelled here"


def test_every_application_of_the_manifest_uploads_the_root_that_the_cfignore_governs() -> None:
    paths = re.findall(r"^\s+path:\s*(\S+)\s*$", (ROOT / "manifest.yml").read_text(encoding="utf-8"), re.M)
    names = re.findall(r"^\s+-\s+name:\s*(\S+)", (ROOT / "manifest.yml").read_text(encoding="utf-8"), re.M)
    assert paths and len(paths) == len(names)
    assert set(paths) == {"."}  # another path would need its own .cfignore


@pytest.mark.parametrize("path", [
    "emulator/__init__.py", "emulator/users.json", "emulator/templates/login.html", "tests/conftest.py",
    "bench/bench_soak.py", "fuzz/fuzz_token_validator.py", "docs/claims-page.png",
    "var/emulator/secrets.json",
    "test-artifacts/screenshots/a.png", ".venv/bin/python", ".git/config", "dev", "requirements-dev.txt",
    "app/__pycache__/settings.cpython-311.pyc",
])
def test_idp01_cf_push_leaves_the_dev_only_path_out(path: str) -> None:
    assert ignored(path, cfignore_patterns())


@pytest.mark.parametrize("path", [
    "app/__init__.py", "gateway/__main__.py", "gateway/xs-app.json", "seccore/__init__.py",
    "requirements.txt", "runtime.txt", "gunicorn.conf.py", "manifest.yml",
])
def test_what_the_applications_run_on_is_uploaded(path: str) -> None:
    assert (ROOT / path).exists(), path
    assert not ignored(path, cfignore_patterns())


def test_idp01_no_dev_only_file_of_the_repository_would_be_uploaded() -> None:
    """Walk the real tree: whatever survives .cfignore lies outside the dev-only paths."""
    patterns = cfignore_patterns()
    uploaded = [p.relative_to(ROOT).as_posix() for p in ROOT.rglob("*")
                if p.is_file() and ".git" not in p.relative_to(ROOT).parts[:1] and ".venv" not in p.parts]
    leaking = [p for p in uploaded if p.split("/", 1)[0] in DEV_ONLY and not ignored(p, patterns)]
    assert leaking == []


def imported_modules(source: Path) -> set[str]:
    """Modules a file imports: import statements, and importlib/__import__ with a literal name."""
    tree = ast.parse(source.read_text(encoding="utf-8"), filename=str(source))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in {"import_module", "__import__"} and isinstance(node.args[0].value, str):
                names.add(node.args[0].value)
    return names


@pytest.mark.parametrize("package", RUNTIME_PACKAGES)
def test_idp01_no_runtime_module_imports_the_emulator_or_the_tests(package: str) -> None:
    sources = sorted((ROOT / package).rglob("*.py"))
    assert sources, package
    offending = {str(src.relative_to(ROOT)): sorted(name for name in imported_modules(src)
                                                    if name.split(".")[0] in {"emulator", "tests"})
                 for src in sources}
    assert {k: v for k, v in offending.items() if v} == {}


@pytest.mark.parametrize(("code", "found"), [
    pytest.param("import emulator", True, id="import"),
    pytest.param("from emulator.tokens import TokenFactory", True, id="from import"),
    pytest.param("import importlib\nimportlib.import_module('emulator.keys')", True, id="import_module"),
    pytest.param("__import__('emulator')", True, id="__import__"),
    pytest.param("from . import emulator_like", False, id="relative import of another name"),
    pytest.param("EMULATOR = 'emulator'", False, id="a string only"),
])
def test_the_import_scan_sees_each_way_to_import(tmp_path: Path, code: str, found: bool) -> None:
    source = tmp_path / "module.py"
    source.write_text(code + "\n", encoding="utf-8")
    assert any(n.split(".")[0] == "emulator" for n in imported_modules(source)) is found
