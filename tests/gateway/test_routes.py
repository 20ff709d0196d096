"""xs-app.json → route table: the shipped file, matching as approuter matches, and every rejection rule
with its exact message (catalogue D: PRX-08, PRX-09, PRX-10, PRX-16, PRX-19; SES-08)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from gateway.routes import AppConfig, RouteMatch, ScopeRule, load_app_config, match
from seccore.errors import ConfigError

SHIPPED = Path(__file__).resolve().parents[2] / "gateway" / "xs-app.json"
BOTH = frozenset({"xsuaa", "ias"})
XSAPPNAME = "frontapp!t1001"
DROP = object()  # removes a key from the base route
ROUTE = {"source": "^/a$", "destination": "frontapp", "authenticationType": "ias"}
AT = "routes[0] (source '^/a$'): "
OAUTH_500 = "approuter would fail at the first request with 500 'OAuth2 requires \"clientid\" option'"
METHODS = "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT, TRACE"


def app(route: dict[str, Any] | None = None, **top: Any) -> dict[str, Any]:
    """A one-route xs-app.json: the base route with ``route`` merged in, plus top-level keys."""
    merged = {k: v for k, v in {**ROUTE, **(route or {})}.items() if v is not DROP}
    return {"routes": [merged], **top}


def load(tmp_path: Path, data: dict[str, Any] | str, *, bound: frozenset[str] = BOTH,
         xsappname: str | None = XSAPPNAME) -> AppConfig:
    path = tmp_path / "xs-app.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return load_app_config(path, xsappname=xsappname, bound=bound)


def problems(tmp_path: Path, data: dict[str, Any] | str, **kwargs: Any) -> list[str]:
    """The problems of a broken file, each without the file name that starts it."""
    with pytest.raises(ConfigError) as info:
        load(tmp_path, data, **kwargs)
    prefix = f"{tmp_path / 'xs-app.json'}: "
    assert all(p.startswith(prefix) for p in info.value.problems), info.value.problems
    return [p.removeprefix(prefix) for p in info.value.problems]


def routed(config: AppConfig, path: str, method: str | None = None) -> RouteMatch:
    found = match(config, path, method)
    assert found is not None, path
    return found


@pytest.fixture(scope="module")
def shipped() -> AppConfig:
    return load_app_config(SHIPPED, xsappname=XSAPPNAME, bound=BOTH)


# -- the shipped file ----------------------------------------------------------------------------------


def test_the_shipped_file_loads_with_both_identity_services_bound(shipped: AppConfig) -> None:
    assert [(r.source.pattern, r.authentication_type, r.destination) for r in shipped.routes] == [
        ("^/homepage$", "ias", "frontapp"),
        ("^/xsuaa/homepage$", "xsuaa", "frontapp"),
        ("^/static/(.*)$", "none", "frontapp"),
    ]
    homepage, xsuaa, static = shipped.routes
    assert homepage.csrf_protection and homepage.scope is None and homepage.http_methods is None
    assert xsuaa.scope == ScopeRule(frozenset({"frontapp!t1001.Display"}))
    assert static.http_methods == {"GET", "HEAD"}  # public: nothing that changes state
    assert shipped.welcome_file == "/homepage" and shipped.authentication_method == "route"
    assert shipped.session_timeout_minutes == 15 and shipped.login_callback == "/login/callback"
    assert shipped.logout is not None
    assert (shipped.logout.endpoint, shipped.logout.page) == ("/logout", "/logout.html")
    # POST with the CSRF token, which the page's script sends (SES-08); approuter's default is GET
    assert shipped.logout.methods == {"POST"} and shipped.logout.csrf_protection


@pytest.mark.parametrize(("path", "route", "forwarded"), [
    pytest.param("/homepage", 0, "/homepage", id="homepage"),
    pytest.param("/xsuaa/homepage", 1, "/homepage", id="xsuaa variant rewritten"),
    pytest.param("/static/style.css", 2, "/static/style.css", id="static"),
    pytest.param("/static/style.css?v=2", 2, "/static/style.css?v=2", id="static with query"),
    pytest.param("/homepage?x=1", None, None, id="query is matched too, '$' ends it"),
    pytest.param("/homepage?x=/static/", None, None, id="PRX-09 query trick"),
    pytest.param("/xsuaa/homepage?/static/", None, None, id="PRX-09 query trick xsuaa"),
    pytest.param("/HOMEPAGE", None, None, id="case variant"),
    pytest.param("/Static/style.css", None, None, id="case variant static"),
    pytest.param("/homepage/", None, None, id="trailing slash"),
    pytest.param("//homepage", None, None, id="double slash"),
    pytest.param("/health", None, None, id="app's health is not routed"),
    pytest.param("/nope", None, None, id="PRX-10 unknown"),
    pytest.param("/", None, None, id="root: the welcome redirect is not a route"),
    pytest.param("/static/../homepage", None, None, id="PRX-08 dot segment"),
    pytest.param("/static/%2e%2e/homepage", None, None, id="PRX-08 encoded dot segment"),
    pytest.param("/static/.%2E/homepage", None, None, id="PRX-08 mixed dot segment"),
    pytest.param("/static\\..\\homepage", None, None, id="backslash"),
    pytest.param("/homepage\n", None, None, id="newline: Python's '$' would match before it"),
    pytest.param("/homepage#/static/", None, None, id="fragment"),
    pytest.param("static/style.css", None, None, id="not a path"),
])
def test_the_shipped_routes_match_as_approuter_would(shipped: AppConfig, path: str, route: int | None,
                                                     forwarded: str | None) -> None:
    found = match(shipped, path)
    assert (found and found.route.index, found and found.path) == (route, forwarded)


def test_a_method_the_public_route_does_not_serve_is_refused_with_allow(shipped: AppConfig) -> None:
    found = match(shipped, "/static/style.css", "POST")
    assert found is not None and not found.method_allowed and found.allow == {"GET", "HEAD"}
    assert routed(shipped, "/static/style.css", "GET").method_allowed


# -- matching rules ------------------------------------------------------------------------------------


def test_first_match_wins(tmp_path: Path) -> None:
    config = load(tmp_path, {"routes": [
        {"source": "^/api/admin/", "destination": "admin", "authenticationType": "xsuaa"},
        {"source": "^/api/", "destination": "api", "authenticationType": "none"},
    ]})
    assert routed(config, "/api/admin/users").route.destination == "admin"
    assert routed(config, "/api/users").route.destination == "api"


def test_http_methods_split_one_path_across_routes(tmp_path: Path) -> None:
    config = load(tmp_path, {"routes": [
        {"source": "^/things$", "destination": "reader", "authenticationType": "ias", "httpMethods": ["GET"]},
        {"source": "^/things$", "destination": "writer", "authenticationType": "ias",
         "httpMethods": ["POST", "DELETE"]},
    ]})
    assert routed(config, "/things", "GET").route.destination == "reader"
    assert routed(config, "/things", "DELETE").route.destination == "writer"
    refused = match(config, "/things", "PATCH")
    assert refused is not None and not refused.method_allowed
    assert refused.allow == {"GET", "POST", "DELETE"} and refused.route.index == 0


def test_the_source_is_tested_against_path_and_query(tmp_path: Path) -> None:
    # an unanchored source is found anywhere, the query included: why the shipped routes use ^…$
    config = load(tmp_path, {"routes": [
        {"source": "^/api/(.*)$", "target": "/v1/$1", "destination": "api", "authenticationType": "ias"},
        {"source": "debug", "destination": "debug", "authenticationType": "none"},
    ]})
    assert routed(config, "/api/x?y=1").path == "/v1/x?y=1"
    assert routed(config, "/public?debug").route.destination == "debug"


def test_the_shipped_sources_are_all_anchored(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="gateway.routes"):
        load_app_config(SHIPPED, xsappname=XSAPPNAME, bound=BOTH)
    assert caplog.records == []


@pytest.mark.parametrize(("source", "loose"), [
    pytest.param("/public/", "/public/", id="PRX-09 no anchor"),
    pytest.param({"path": "/public/", "matchCase": False}, "/public/", id="PRX-09 object form"),
    pytest.param("^/a|/b", "/b", id="PRX-09 one alternative unanchored"),
    pytest.param("^/a|", "", id="PRX-09 empty alternative"),
    pytest.param(r"\^/a", r"\^/a", id="PRX-09 escaped caret"),
    pytest.param("(?:^/a|^/b)", "(?:^/a|^/b)", id="PRX-09 anchors inside a group (conservative)"),
    pytest.param("^/a|^/b", None, id="every alternative anchored"),
    pytest.param("^/(a|b)/", None, id="alternatives inside a group"),
    pytest.param(r"^/a\|b", None, id="escaped bar"),
    pytest.param("^/[|(]x", None, id="bar and parenthesis in a class"),
])
def test_an_unanchored_source_is_taken_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                      source: object, loose: str | None) -> None:
    """Approuter takes such a file, so refusing it would break files that run there; the warning
    says that a query can now select the route (``/admin?x=/public/``)."""
    with caplog.at_level(logging.WARNING, logger="gateway.routes"):
        config = load(tmp_path, app({"source": source}))
    assert len(config.routes) == 1
    warnings = [r.getMessage() for r in caplog.records if r.name == "gateway.routes"]
    if loose is None:
        assert warnings == []
    else:
        assert len(warnings) == 1, warnings
        assert f"'source' is not anchored ({loose!r} does not start with '^')" in warnings[0]
        assert "routes[0]" in warnings[0] and "PRX-09" in warnings[0]


@pytest.mark.parametrize(("source", "target", "path", "forwarded"), [
    pytest.param("^/old", "/new", "/old/x?q=1", "/new/x?q=1", id="only the matched part is replaced"),
    pytest.param("^/a/(.*)/(.*)$", "/$2/$1", "/a/x/y", "/y/x", id="groups"),
    pytest.param("^/a(/b)?$", "/c$1", "/a", "/c", id="unmatched group is empty"),
    pytest.param("^/a$", "/b$$1", "/a", "/b$1", id="$$ is a dollar"),
    pytest.param("^/a", "[$&]", "/a/x", "[/a]/x", id="$& is the match"),
    pytest.param("x", "[$`|$']", "/axb", "/a[/a|b]b", id="$` and $' are before and after"),
    pytest.param("^/(a)$", "/$01", "/a", "/a", id="$01 is group 1"),
    pytest.param("^/(a)$", "/$11", "/a", "/a1", id="$11 without group 11 is $1 then 1"),
    pytest.param("^/a$", "/b\\1", "/a", "/b\\1", id="backslashes are literal"),
])
def test_target_is_applied_as_javascript_string_replace(tmp_path: Path, source: str, target: str,
                                                        path: str, forwarded: str) -> None:
    config = load(tmp_path, app({"source": source, "target": target}))
    assert routed(config, path).path == forwarded


def test_match_case_false_matches_case_insensitively(tmp_path: Path) -> None:
    config = load(tmp_path, app({"source": {"path": "^/a$", "matchCase": False}}))
    assert match(config, "/A") is not None and match(config, "/b") is None


# -- scopes --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("scope", "method", "granted", "allowed"), [
    pytest.param("$XSAPPNAME.Display", "GET", ["frontapp!t1001.Display"], True, id="string"),
    pytest.param("$XSAPPNAME.Display", "GET", ["frontapp.Display"], False, id="string, other app"),
    pytest.param("$XSAPPNAME.Display", "GET", "openid frontapp!t1001.Display", True, id="space-separated"),
    pytest.param("$XSAPPNAME.Display", "GET", "frontapp!t1001.Display2", False, id="no prefix matching"),
    pytest.param(["$XSAPPNAME.A", "$XSAPPNAME.B"], "POST", ["frontapp!t1001.B"], True, id="list: any of"),
    pytest.param(["$XSAPPNAME.A", "$XSAPPNAME.B"], "POST", [], False, id="list, none"),
    pytest.param({"GET": "$XSAPPNAME.V", "POST": ["$XSAPPNAME.W"], "default": "$XSAPPNAME.G"}, "GET",
                 ["frontapp!t1001.V"], True, id="per method: GET"),
    pytest.param({"GET": "$XSAPPNAME.V", "POST": ["$XSAPPNAME.W"], "default": "$XSAPPNAME.G"}, "POST",
                 ["frontapp!t1001.V"], False, id="per method: POST needs W"),
    pytest.param({"GET": "$XSAPPNAME.V", "POST": ["$XSAPPNAME.W"], "default": "$XSAPPNAME.G"}, "DELETE",
                 ["frontapp!t1001.G"], True, id="per method: default"),
    pytest.param({"GET": "$XSAPPNAME.V"}, "PUT", ["frontapp!t1001.V"], False, id="no entry, no default"),
    pytest.param("other-app.Display", "GET", ["other-app.Display"], True, id="literal app name"),
])
def test_scope_forms_with_xsappname(tmp_path: Path, scope: object, method: str, granted: Any,
                                    allowed: bool) -> None:
    rule = load(tmp_path, app({"scope": scope, "authenticationType": "xsuaa"})).routes[0].scope
    assert rule is not None and rule.allows(method, granted) is allowed


# -- defaults ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["xsuaa", "ias"])
def test_authentication_type_defaults_to_the_only_bound_service(tmp_path: Path, kind: str) -> None:
    config = load(tmp_path, app({"authenticationType": DROP}), bound=frozenset({kind}))
    assert config.routes[0].authentication_type == kind


def test_defaults_are_approuters(tmp_path: Path) -> None:
    config = load(tmp_path, app(logout={"logoutEndpoint": "/logout"}))
    route = config.routes[0]
    assert (route.target, route.scope, route.csrf_protection, route.http_methods) == (None, None, True, None)
    assert config.session_timeout_minutes is None  # SESSION_TIMEOUT, then 15: the settings' call
    assert config.welcome_file is None and config.login_callback == "/login/callback"
    assert config.logout is not None and config.logout.methods == {"GET"} and config.logout.page is None


def test_authentication_method_none_makes_every_route_public(tmp_path: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="gateway.routes"):
        config = load(tmp_path, app({"authenticationType": "xsuaa", "scope": "$XSAPPNAME.X"},
                                    authenticationMethod="none"), bound=frozenset())
    assert config.routes[0].authentication_type == "none" and config.routes[0].scope is None
    assert "authenticationMethod 'none'" in caplog.text


# -- broken files: each rule, alone, gives exactly its message -----------------------------------------


BROKEN = [
    pytest.param(app(welcomeFiles="/a"), {},
                 "unknown key 'welcomeFiles' (did you mean 'welcomeFile'?)", id="unknown top-level key"),
    pytest.param(app({"csrfProtect": True}), {},
                 AT + "unknown key 'csrfProtect' (did you mean 'csrfProtection'?)", id="unknown route key"),
    pytest.param(app(logout={"logoutEndpoint": "/logout", "logoutMethods": ["POST"]}), {},
                 "logout: unknown key 'logoutMethods' (did you mean 'logoutMethod'?)",
                 id="unknown logout key"),
    pytest.param(app(login={"callback": "/cb"}), {},
                 "login: unknown key 'callback' (did you mean 'callbackEndpoint'?)", id="unknown login key"),
    pytest.param(app({"source": {"path": "^/a$", "matchcase": False}}), {},
                 AT + "source: unknown key 'matchcase' (did you mean 'matchCase'?)", id="unknown source key"),
    pytest.param(app({"identityProvider": "corporate"}), {},
                 AT + "'identityProvider' is an approuter setting this gateway does not implement; remove it",
                 id="known to approuter, not here"),
    pytest.param(app(websockets={"enabled": True}), {},
                 "'websockets' is an approuter setting this gateway does not implement; remove it",
                 id="known top-level key, not here"),
    pytest.param(app({"source": "^/a("}), {},
                 "routes[0] (source '^/a('): 'source' is not a valid regular expression: missing ), "
                 "unterminated subpattern at position 3", id="bad regex"),
    pytest.param(app({"source": "(?i)^/a$"}), {},
                 "routes[0] (source '(?i)^/a$'): 'source' uses '(?i', which JavaScript reads differently or "
                 "refuses (approuter compiles 'source' as a JavaScript RegExp)", id="inline flag"),
    pytest.param(app({"source": "^/a\\Z"}), {},
                 "routes[0] (source '^/a\\\\Z'): 'source' uses '\\Z', which JavaScript reads differently or "
                 "refuses (approuter compiles 'source' as a JavaScript RegExp)", id="Python-only escape"),
    pytest.param(app({"source": "^/a{,3}$"}), {},
                 "routes[0] (source '^/a{,3}$'): 'source' uses '{,3}', which JavaScript reads differently or "
                 "refuses (approuter compiles 'source' as a JavaScript RegExp)", id="{,n}"),
    pytest.param(app({"source": "^/[[a]$"}), {},
                 "routes[0] (source '^/[[a]$'): 'source' is ambiguous (Possible nested set at position 3): "
                 "escape the character", id="nested set"),
    pytest.param(app({"source": ""}), {},
                 "routes[0] (source ''): 'source' must be a non-empty regular expression", id="empty source"),
    pytest.param(app({"source": {"path": "^/a$", "matchCase": "no"}}), {},
                 AT + "'matchCase' must be true or false, not 'no'", id="matchCase"),
    pytest.param(app({"authenticationType": "oauth"}), {},
                 AT + "authenticationType 'oauth' is not one of 'xsuaa', 'ias', 'none'",
                 id="bad authenticationType"),
    pytest.param(app({"authenticationType": "basic"}), {},
                 AT + "authenticationType 'basic' (passwords through the gateway) is not supported: use "
                 "'xsuaa', 'ias' or 'none'", id="basic"),
    pytest.param(app({"authenticationType": "xsuaa"}), {"bound": frozenset({"ias"})},
                 AT + f"authenticationType 'xsuaa' but no 'xsuaa' service is bound ({OAUTH_500}): bind one "
                 "or change authenticationType", id="xsuaa not bound"),
    pytest.param(app(), {"bound": frozenset({"xsuaa"})},
                 AT + f"authenticationType 'ias' but no 'identity' service is bound ({OAUTH_500}): bind one "
                 "or change authenticationType", id="ias not bound"),
    pytest.param(app({"authenticationType": DROP}), {"bound": frozenset()},
                 AT + "no authenticationType and no 'xsuaa' or 'identity' service is bound: it defaults to "
                 f"'xsuaa' and {OAUTH_500}; bind one or set 'none'", id="default, nothing bound"),
    pytest.param(app({"authenticationType": DROP}), {},
                 AT + "no authenticationType while both 'xsuaa' and 'identity' are bound: approuter then "
                 "picks per subaccount at runtime; set 'ias' or 'xsuaa'", id="default, both bound"),
    pytest.param(app({"destination": DROP}), {},
                 AT + "no 'destination': every route of this gateway forwards to a destination",
                 id="missing destination"),
    pytest.param(app({"destination": DROP, "localDir": "resources"}), {},
                 AT + "'localDir' (static files) is not supported by this gateway: serve the files from the "
                 "app and route to it with a 'destination'", id="localDir unsupported"),
    pytest.param(app({"destination": DROP, "service": "sap-approuter-userapi"}), {},
                 AT + "'service' routes (business services, HTML5 repository, user API) are not supported by "
                 "this gateway: route to a 'destination'", id="service unsupported"),
    pytest.param(app({"source": "^/d/([^/]+)/", "destination": "$1"}), {},
                 "routes[0] (source '^/d/([^/]+)/'): dynamic destination '$1' is not supported (the user's "
                 "token may only go to destinations this file names): name the destination",
                 id="PRX-19 dynamic destination"),
    pytest.param(app({"httpMethods": ["GET", "FETCH"]}), {},
                 AT + f"'httpMethods' must be a non-empty list of {METHODS} (upper case), "
                 "not ['GET', 'FETCH']",
                 id="unknown method"),
    pytest.param(app({"httpMethods": ["get"]}), {},
                 AT + f"'httpMethods' must be a non-empty list of {METHODS} (upper case), not ['get']",
                 id="lower-case method"),
    pytest.param(app({"httpMethods": "GET"}), {},
                 AT + f"'httpMethods' must be a non-empty list of {METHODS} (upper case), not 'GET'",
                 id="methods not a list"),
    pytest.param(app({"httpMethods": ["GET", "TRACE"]}), {},
                 AT + "'httpMethods' lists TRACE, which this gateway refuses on every route (405)",
                 id="PRX-16 TRACE"),
    pytest.param(app({"scope": 5}), {},
                 AT + "'scope' must be a scope name, a non-empty list of them, or an object from upper-case "
                 "HTTP methods and 'default' to those", id="scope number"),
    pytest.param(app({"scope": []}), {},
                 AT + "'scope' must be a scope name, a non-empty list of them, or an object from upper-case "
                 "HTTP methods and 'default' to those", id="scope empty list"),
    pytest.param(app({"scope": {"GET": {"any": "$XSAPPNAME.A"}}}), {},
                 AT + "'scope' must be a scope name, a non-empty list of them, or an object from upper-case "
                 "HTTP methods and 'default' to those", id="scope nested object"),
    pytest.param(app({"scope": {"get": "$XSAPPNAME.A"}}), {},
                 AT + "scope: unknown key 'get' (did you mean 'GET'?)", id="scope lower-case method"),
    pytest.param(app({"scope": "$XSAPPNAME.A", "authenticationType": "none"}), {},
                 AT + "'scope' on a route with authenticationType 'none' is never checked (nobody logs in): "
                 "drop it or require a login", id="scope on a public route"),
    pytest.param(app({"scope": "$XSAPPNAME.A"}), {"bound": frozenset({"ias"})},
                 AT + "'scope' needs an 'xsuaa' binding: scopes come from XSUAA tokens, also after an IAS "
                 "login",
                 id="scope without xsuaa"),
    pytest.param(app({"scope": "$XSAPPNAME.A"}), {"xsappname": None},
                 AT + "'scope' uses $XSAPPNAME but the xsappname is unknown (the 'xsuaa' binding has it)",
                 id="xsappname unknown"),
    pytest.param(app({"csrfProtection": "yes"}), {},
                 AT + "'csrfProtection' must be true or false, not 'yes'", id="csrfProtection"),
    pytest.param(app({"source": "^/a/(.*)$", "target": "/b/$2"}), {},
                 "routes[0] (source '^/a/(.*)$'): 'target' refers to $2, but 'source' has 1 group(s)",
                 id="target group"),
    pytest.param(app(sessionTimeout=0), {},
                 "'sessionTimeout' must be a whole number of minutes above 0, not 0", id="sessionTimeout 0"),
    pytest.param(app(sessionTimeout="15"), {},
                 "'sessionTimeout' must be a whole number of minutes above 0, not '15'",
                 id="sessionTimeout text"),
    pytest.param(app(sessionTimeout=1.5), {},
                 "'sessionTimeout' must be a whole number of minutes above 0, not 1.5",
                 id="sessionTimeout float"),
    pytest.param(app(sessionTimeout=True), {},
                 "'sessionTimeout' must be a whole number of minutes above 0, not True",
                 id="sessionTimeout bool"),
    pytest.param(app(welcomeFile="https://evil.example/"), {},
                 "'welcomeFile' must be a path on this gateway such as '/homepage', not 'https://evil.example/'",
                 id="welcomeFile URL"),
    pytest.param(app(welcomeFile="//evil.example"), {},
                 "'welcomeFile' must be a path on this gateway such as '/homepage', not '//evil.example'",
                 id="welcomeFile protocol-relative"),
    pytest.param('{"welcomeFile": "/a", "welcomeFile": "/b", "routes": [{"source": "^/", '
                 '"destination": "d", "authenticationType": "ias"}]}', {},
                 "duplicate key 'welcomeFile' (JSON.parse would keep the last one silently)",
                 id="duplicate welcomeFile"),
    pytest.param(app(welcomeFile="/index.html"), {},
                 "welcomeFile '/index.html' matches no route: GET / would redirect to a 404",
                 id="welcomeFile unrouted"),
    pytest.param(app(authenticationMethod="basic"), {},
                 "'authenticationMethod' must be 'route' or 'none', not 'basic'", id="authenticationMethod"),
    pytest.param({"routes": []}, {}, "'routes' must be a non-empty list of route objects", id="no routes"),
    pytest.param(app(logout={"logoutPage": "/bye"}), {},
                 "logout: no 'logoutEndpoint' (a path such as '/logout')", id="logout without endpoint"),
    pytest.param(app(logout={"logoutEndpoint": "/logout", "logoutMethod": "DELETE"}), {},
                 "logout: 'logoutMethod' must be 'GET' or 'POST', not 'DELETE'", id="logoutMethod"),
    pytest.param(app(logout={"logoutEndpoint": "/logout", "csrfProtection": True}), {},
                 "logout: 'csrfProtection' applies only to logoutMethod 'POST' (a GET logout has none)",
                 id="logout csrf with GET"),
    pytest.param(app(logout={"logoutEndpoint": "/logout", "logoutPage": "javascript:alert(1)"}), {},
                 "logout: 'logoutPage' must be a path on this gateway or an http(s) URL, "
                 "not 'javascript:alert(1)'",
                 id="logoutPage scheme"),
    pytest.param(app(logout={"logoutEndpoint": "/logout", "logoutPage": "/a"}), {},
                 "logout: logoutPage '/a' is served by routes[0], which needs a login: the user would be "
                 "logged straight back in; make it authenticationType 'none'", id="logoutPage behind login"),
    pytest.param(app(login={"callbackEndpoint": "login/callback"}), {},
                 "login: 'callbackEndpoint' must be a path such as '/login/callback', not 'login/callback'",
                 id="callbackEndpoint"),
    pytest.param("[]", {}, "must hold a JSON object", id="not an object"),
]


@pytest.mark.parametrize(("data", "kwargs", "problem"), BROKEN)
def test_each_broken_file_gives_exactly_its_problem(tmp_path: Path, data: dict[str, Any] | str,
                                                    kwargs: dict[str, Any], problem: str) -> None:
    assert problems(tmp_path, data, **kwargs) == [problem]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    data = {"sessionTimout": 5, "routes": [
        {"source": "^/a(", "destination": "frontapp", "authenticationType": "ias"},
        {"source": "^/b$", "localDir": "resources", "authenticationType": "none"},
    ]}
    assert problems(tmp_path, data) == [
        "unknown key 'sessionTimout' (did you mean 'sessionTimeout'?)",
        "routes[0] (source '^/a('): 'source' is not a valid regular expression: missing ), unterminated "
        "subpattern at position 3",
        "routes[1] (source '^/b$'): 'localDir' (static files) is not supported by this gateway: serve the "
        "files from the app and route to it with a 'destination'",
    ]
    with pytest.raises(ConfigError) as info:
        load(tmp_path, data)
    assert str(info.value).startswith("invalid configuration:\n  - ") and str(info.value).count("\n  - ") == 3


def test_a_file_that_is_not_json_says_so(tmp_path: Path) -> None:
    assert problems(tmp_path, '{"routes": [') == [
        "is not valid JSON: Expecting value: line 1 column 13 (char 12)"]


def test_a_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_app_config(tmp_path / "nope.json", xsappname=None, bound=BOTH)
    assert info.value.problems == [f"{tmp_path / 'nope.json'}: cannot be read: No such file or directory"]
