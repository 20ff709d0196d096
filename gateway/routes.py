"""The route table: an ``xs-app.json`` read strictly, as SAP's approuter reads it, into frozen objects.

The file must run unchanged in ``@sap/approuter``: only keys approuter knows pass, with its defaults;
keys it knows that this gateway does not implement are errors, not ignored, and so is what approuter
notices only at the first request (an unbound identity service: 500 ``OAuth2 requires "clientid"``).

``match`` takes the NORMALISED path and query (decoding, dot segments, lookalikes: the job of
``proxy.normalize_path``, PRX-08), so ``%2e%2e/`` reaches no route its decoded form would not. As
in approuter, the first route whose ``source`` is found in the path *and query* wins (PRX-09),
case-sensitively by default. So a ``source`` that does not start with ``^`` is also found in a query
(``/admin?x=/public/``): the loader warns about it but takes it, as approuter does.

The shipped ``gateway/xs-app.json`` (JSON has no comments): ``logoutPage`` ``/logout.html`` (the
post-logout path registered in config-ias.json) matches no route on purpose; the gateway serves it
without login, so the IdP's redirect after logout does not log the user straight back in
(approuter pain point 4; approuter itself would answer 404).
``/homepage`` says ``ias``: with IAS and XSUAA bound approuter's default depends on the subaccount
at runtime. ``/xsuaa/homepage`` is the same page behind XSUAA and the Display scope; ``/static/``
is public and GET/HEAD only. Logout is a POST with the session's CSRF token (the page's script
sends it), so another site cannot log the user out (SES-08); approuter's default is GET.
"""

from __future__ import annotations

import difflib
import json
import logging
import re
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

from seccore.errors import ConfigError

__all__ = ["AppConfig", "LogoutConfig", "Route", "RouteMatch", "ScopeRule", "load_app_config", "match"]

log = logging.getLogger(__name__)

AuthType = Literal["xsuaa", "ias", "none"]

DEFAULT_LOGIN_CALLBACK = "/login/callback"
#: minutes; a file without ``sessionTimeout`` gives None, so the settings apply approuter's order:
#: SESSION_TIMEOUT, then the file, then this
DEFAULT_SESSION_TIMEOUT_MINUTES = 15
DEFAULT_CSRF_PROTECTION = True  # approuter checks it for non-GET/HEAD on routes with a login
DEFAULT_AUTHENTICATION_METHOD = "route"
DEFAULT_LOGOUT_METHOD = "GET"  # and logout.csrfProtection true, which only POST uses
#: approuter's schema for ``httpMethods``: upper case, no extension methods
ROUTE_METHODS = frozenset({"DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT", "TRACE", "PATCH"})
SCOPE_KEYS = ROUTE_METHODS | {"CONNECT", "default"}
XSAPPNAME = "$XSAPPNAME"
BINDING_LABEL = {"xsuaa": "xsuaa", "ias": "identity"}
APPROUTER_500 = "approuter would fail at the first request with 500 'OAuth2 requires \"clientid\" option'"

# The keys approuter knows, split into those implemented here and those refused.
TOP_KEYS = frozenset({"welcomeFile", "authenticationMethod", "sessionTimeout", "routes", "login", "logout"})
TOP_REFUSED = frozenset({"destinations", "services", "responseHeaders", "compression", "cors", "errorPage",
                         "pluginMetadataEndpoint", "whitelistService", "websockets", "stateProtection"})
ROUTE_KEYS = frozenset({"source", "target", "destination", "authenticationType", "scope", "csrfProtection",
                        "httpMethods"})
ROUTE_REFUSED = frozenset({"service", "endpoint", "localDir", "replace", "cacheControl", "preferLocal",
                           "identityProvider", "dynamicIdentityProvider", "setBackendSessionCookies"})
LOGOUT_KEYS = frozenset({"logoutEndpoint", "logoutPage", "logoutMethod", "csrfProtection"})

# approuter compiles ``source`` as a JavaScript RegExp. Refused, as JavaScript reads them differently
# or not at all: ``(?`` groups but ``(?:`` and lookarounds (inline flags, named and atomic groups),
# possessive quantifiers, ``{,n}``, ``[]``, ``[^]``, Python-only escapes, and what Python warns about
# ("possible nested set"). re.ASCII makes ``\d \w \b`` ASCII as in JavaScript; ``$`` (Python also
# matches before a final newline) and ``.`` (JavaScript also stops at CR, U+2028, U+2029) agree as
# ``match`` refuses paths holding those. Left: ``\s`` and ``matchCase: false`` are ASCII-only here.
_JS_DIFFERS = re.compile(r"""
    \\[AZzaNU] | \\. | \[\^?\] | \[(?:\\.|[^\]\\])*\]  # Python-only escapes, other escapes, [] [^], classes
    | \((?=\?)(?!\?[:=!]|\?<[=!]) | [*+?}]\+ | \{,\d*\}  # (?i) (?P<n> (?> (?<n>, possessive, {,n}
    """, re.VERBOSE | re.DOTALL)
#: JavaScript ``String.prototype.replace`` patterns: $$, $&, $`, $', $n, $nn
_JS_REPLACEMENT = re.compile(r"\$([$&`']|\d{1,2})")
_NOT_NORMALISED = re.compile(r"[\x00-\x1f\x7f#\u2028\u2029]")
#: "." and ".." segments, also percent-encoded ("." is unreserved: a normaliser decodes it)
_DOT_SEGMENT = re.compile(r"(?:^|/)(?:\.|%2e){1,2}(?:/|$)", re.IGNORECASE)
_URL = re.compile(r"https?://[^\s/?#@\\]+(?:[/?][^\s#\\]*)?")


@dataclass(frozen=True)
class ScopeRule:
    """The scopes a route requires (any one of them), for every method or per HTTP method."""

    default: frozenset[str] | None = None
    per_method: tuple[tuple[str, frozenset[str]], ...] = ()

    def allows(self, method: str, scopes: Iterable[str]) -> bool:
        """Whether ``scopes`` (or a token response's space-separated ``scope``) admit ``method``."""
        required = dict(self.per_method).get(method, self.default)
        if required is None:  # approuter: a method the object form lacks, and no "default", is refused
            return False
        return not required.isdisjoint(scopes.split() if isinstance(scopes, str) else scopes)


@dataclass(frozen=True, kw_only=True)
class Route:
    """One entry of ``routes``, with approuter's defaults filled in."""

    source: re.Pattern[str]
    target: str | None
    destination: str
    authentication_type: AuthType
    scope: ScopeRule | None = None
    csrf_protection: bool = DEFAULT_CSRF_PROTECTION
    http_methods: frozenset[str] | None = None  #: None: every method
    index: int  #: position in ``routes``, 0-based


@dataclass(frozen=True)
class LogoutConfig:
    """The ``logout`` block: central logout at ``endpoint``, then the IdP sends the user to ``page``."""

    endpoint: str
    page: str | None  #: a path on this gateway or an absolute URL
    methods: frozenset[str]
    csrf_protection: bool = True


@dataclass(frozen=True)
class AppConfig:
    """A whole ``xs-app.json``."""

    routes: tuple[Route, ...]
    welcome_file: str | None
    authentication_method: Literal["route", "none"]
    logout: LogoutConfig | None
    session_timeout_minutes: int | None
    login_callback: str = DEFAULT_LOGIN_CALLBACK


@dataclass(frozen=True)
class RouteMatch:
    """The route a request takes, and where it goes at the destination."""

    route: Route
    path: str  #: path and query for the destination, ``target`` applied
    #: False when routes match the path but none serves the method: answer 405 with ``allow``
    method_allowed: bool = True
    allow: frozenset[str] = frozenset()


def match(config: AppConfig, path_and_query: str, method: str | None = None) -> RouteMatch | None:
    """The first route whose source is found in the normalised path and query, or None.

    Given ``method``, routes whose ``httpMethods`` lack it are passed over (approuter splits one
    path across destinations by method).
    """
    path = path_and_query.partition("?")[0]
    if not path.startswith("/") or "\\" in path or _DOT_SEGMENT.search(path) \
            or _NOT_NORMALISED.search(path_and_query):
        return None  # not normalised: fail closed (404) rather than guess
    refused: RouteMatch | None = None
    for route in config.routes:
        if (found := route.source.search(path_and_query)) is None:
            continue
        rewritten = _rewrite(route.target, found, path_and_query)
        if method is None or route.http_methods is None or method in route.http_methods:
            return RouteMatch(route, rewritten)
        allow = route.http_methods | (refused.allow if refused else frozenset())
        refused = RouteMatch(refused.route if refused else route, refused.path if refused else rewritten,
                             False, allow)
    return refused


def _rewrite(target: str | None, found: re.Match[str], subject: str) -> str:
    """JavaScript's ``subject.replace(source, target)``: only the matched part is replaced."""
    if target is None:
        return subject

    def expand(token: re.Match[str]) -> str:
        t, groups = token[1], found.re.groups
        if not t.isdigit():
            return {"$": "$", "&": found[0], "`": subject[:found.start()], "'": subject[found.end():]}[t]
        if len(t) == 2 and 1 <= int(t) <= groups:
            return found[int(t)] or ""
        if 1 <= int(t[0]) <= groups:
            return (found[int(t[0])] or "") + t[1:]
        return token[0]  # JavaScript keeps "$0" or "$7" (no such group) as written

    return subject[:found.start()] + _JS_REPLACEMENT.sub(expand, target) + subject[found.end():]


def load_app_config(path: Path, *, xsappname: str | None, bound: frozenset[str]) -> AppConfig:
    """Read an ``xs-app.json`` as approuter would; raise ConfigError naming every problem."""
    if not bound <= BINDING_LABEL.keys():
        raise ValueError(f"bound may hold only 'xsuaa' and 'ias', not {sorted(bound)}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=_Object.of)
    except OSError as e:
        raise ConfigError([f"{path}: cannot be read: {e.strerror}"]) from e
    except ValueError as e:  # bad JSON or UTF-8 (NaN, which JSON.parse refuses, fails the type checks)
        raise ConfigError([f"{path}: is not valid JSON: {e}"]) from e
    parser = _Parser(str(path), xsappname, bound)
    config = parser.app(data)
    if parser.problems or config is None:
        raise ConfigError(parser.problems)
    return config


class _Object(dict[str, Any]):
    """A JSON object that remembers keys it held twice (JSON.parse keeps the last one silently)."""

    duplicates: tuple[str, ...] = ()

    @classmethod
    def of(cls, pairs: list[tuple[str, Any]]) -> _Object:
        obj, keys = cls(pairs), [k for k, _ in pairs]
        obj.duplicates = tuple(sorted({k for k in keys if keys.count(k) > 1}))
        return obj


def _is_path(value: object) -> bool:
    return isinstance(value, str) and bool(re.fullmatch(r"/(?!/)[^\s\\#]*", value))


def _scope_names(value: object) -> frozenset[str] | None:
    if isinstance(value, str) and value.strip():
        return frozenset({value})
    if isinstance(value, list) and value and all(isinstance(v, str) and v.strip() for v in value):
        return frozenset(value)
    return None


def _js_incompatibility(pattern: str) -> str | None:
    """The first construct of ``pattern`` that JavaScript reads differently from Python, or None."""
    for found in _JS_DIFFERS.finditer(pattern):
        text = found[0]
        skipped = (text.startswith("\\") and text[1:] not in tuple("AZzaNU")) \
            or (text.startswith("[") and text not in ("[]", "[^]"))
        if not skipped:
            return f"'{pattern[found.start():found.start() + 3]}'" if text == "(" else f"'{text}'"
    return None


def _unanchored(pattern: str) -> str | None:
    """The first top-level alternative of ``pattern`` that does not start with ``^``, or None.

    For a compiled, JavaScript-compatible pattern. Conservative: ``(?:^/a|^/b)`` counts as unanchored.
    """
    alternatives: list[str] = []
    depth = start = i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            i += 1  # skip the escaped character
        elif char == "[":  # a class, up to its unescaped "]" (JavaScript's "[]" and "[^]" were refused)
            i += 1
            while pattern[i] != "]":
                i += 2 if pattern[i] == "\\" else 1
        elif char in "()":
            depth += 1 if char == "(" else -1
        elif char == "|" and depth == 0:
            alternatives.append(pattern[start:i])
            start = i + 1
        i += 1
    alternatives.append(pattern[start:])
    return next((a for a in alternatives if not a.startswith("^")), None)


def _is_bool(value: object) -> bool:
    return isinstance(value, bool)


class _Parser:
    """One pass over the parsed file; each problem names the file and where in it."""

    def __init__(self, file: str, xsappname: str | None, bound: frozenset[str]) -> None:
        self.file, self.xsappname, self.bound = file, xsappname, bound
        self.problems: list[str] = []
        self.method = DEFAULT_AUTHENTICATION_METHOD
        self.routes: list[Route] = []
        self.routes_complete = False  # checks against the routes are fair only when all of them parsed

    def add(self, where: str, problem: str) -> None:
        self.problems.append(f"{self.file}: {where}{problem}")

    def get(self, obj: dict[str, Any], key: str, ok: Callable[[Any], bool], want: str, where: str = "",
            default: Any = None) -> Any:
        """``obj[key]`` if ``ok`` accepts it, else ``default`` (and a problem when the key is there)."""
        if key in obj and not ok(obj[key]):
            self.add(where, f"'{key}' must be {want}, not {obj[key]!r}")
        return obj[key] if key in obj and ok(obj[key]) else default

    def keys(self, obj: dict[str, Any], where: str, known: frozenset[str],
             refused: frozenset[str] = frozenset()) -> None:
        for key in getattr(obj, "duplicates", ()):
            self.add(where, f"duplicate key '{key}' (JSON.parse would keep the last one silently)")
        for key in sorted(obj.keys() - known - refused):
            names = {k.lower(): k for k in sorted(known | refused)}  # "get" means "GET"
            close = [names[c] for c in difflib.get_close_matches(key.lower(), names, n=1)]
            self.add(where, f"unknown key '{key}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
        for key in sorted(obj.keys() & refused - {"localDir", "service"}):  # those two: destination()
            self.add(where, f"'{key}' is an approuter setting this gateway does not implement; remove it")

    def first(self, path: str) -> Route | None:
        return next((r for r in self.routes if r.source.search(path)), None)

    def app(self, data: object) -> AppConfig | None:
        if not isinstance(data, dict):
            return self.add("", "must hold a JSON object")
        self.keys(data, "", TOP_KEYS, TOP_REFUSED)
        self.method = self.get(data, "authenticationMethod", ("route", "none").__contains__,
                               "'route' or 'none'", default=DEFAULT_AUTHENTICATION_METHOD)
        if self.method == "none":
            log.warning("%s: authenticationMethod 'none': no route logs in, scopes are ignored", self.file)
        routes = data.get("routes")
        if not isinstance(routes, list) or not routes:
            self.add("", "'routes' must be a non-empty list of route objects")
        else:
            before = len(self.problems)
            self.routes = [r for i, raw in enumerate(routes) if (r := self.route(i, raw)) is not None]
            self.routes_complete = len(self.problems) == before
        timeout = self.get(data, "sessionTimeout", lambda v: type(v) is int and v > 0,
                           "a whole number of minutes above 0")
        welcome = self.get(data, "welcomeFile", _is_path, "a path on this gateway such as '/homepage'")
        if welcome and self.routes_complete and not self.first(welcome):
            self.add("", f"welcomeFile {welcome!r} matches no route: GET / would redirect to a 404")
        logout = self.get(data, "logout", lambda v: isinstance(v, dict), "an object")
        login = self.get(data, "login", lambda v: isinstance(v, dict), "an object", default={})
        self.keys(login, "login: ", frozenset({"callbackEndpoint"}))
        callback = self.get(login, "callbackEndpoint", lambda v: _is_path(v) and "?" not in v,
                            "a path such as '/login/callback'", "login: ", DEFAULT_LOGIN_CALLBACK)
        return AppConfig(tuple(self.routes), welcome, self.method,
                         None if logout is None else self.logout(logout), timeout, callback)

    def route(self, i: int, raw: object) -> Route | None:
        if not isinstance(raw, dict):
            return self.add(f"routes[{i}]: ", "must be an object")
        src, before = raw.get("source"), len(self.problems)
        text = src.get("path") if isinstance(src, dict) else src
        where = f"routes[{i}] (source {text!r}): " if isinstance(text, str) else f"routes[{i}]: "
        self.keys(raw, where, ROUTE_KEYS, ROUTE_REFUSED)
        pattern, destination = self.pattern(where, src), self.destination(where, raw)
        auth = self.auth_type(where, raw)
        scope = self.scope(where, raw["scope"], auth) if "scope" in raw else None
        csrf = self.get(raw, "csrfProtection", _is_bool, "true or false", where, DEFAULT_CSRF_PROTECTION)
        methods = self.get(raw, "httpMethods", lambda v: isinstance(v, list) and bool(v) and all(
            isinstance(m, str) and m in ROUTE_METHODS for m in v),
            f"a non-empty list of {', '.join(sorted(ROUTE_METHODS))} (upper case)", where)
        if methods and "TRACE" in methods:
            self.add(where, "'httpMethods' lists TRACE, which this gateway refuses on every route (405)")
        target = self.get(raw, "target", lambda v: isinstance(v, str), "a string such as '/static/$1'", where)
        for t in _JS_REPLACEMENT.findall(target or "") if pattern else ():
            if t.isdigit() and not 1 <= int(t[0]) <= pattern.groups and not 1 <= int(t) <= pattern.groups:
                self.add(where, f"'target' refers to ${t[0]}, but 'source' has {pattern.groups} group(s)")
        if len(self.problems) > before or pattern is None or destination is None or auth is None:
            return None
        if (loose := _unanchored(pattern.pattern)) is not None:
            # A warning, not a refusal: approuter takes such a file, and a route whose auth does not
            # differ from its neighbours' is harmless. Refusing would break files that work there.
            log.warning("%s: %s'source' is not anchored (%r does not start with '^'): it is looked for "
                        "anywhere in the path and query, so '/other/path?x=<a match>' takes this route "
                        "too (PRX-09); start it with '^'", self.file, where, loose)
        return Route(source=pattern, target=target, destination=destination, authentication_type=auth,
                     scope=scope, csrf_protection=csrf, http_methods=methods and frozenset(methods), index=i)

    def pattern(self, where: str, src: object) -> re.Pattern[str] | None:
        flags = re.ASCII  # \d \w \b as in JavaScript
        if isinstance(src, dict):
            self.keys(src, where + "source: ", frozenset({"path", "matchCase"}))
            if self.get(src, "matchCase", _is_bool, "true or false", where, True) is False:
                flags |= re.IGNORECASE
            src = src.get("path")
        if not isinstance(src, str) or not src:
            return self.add(where, "'source' must be a non-empty regular expression")
        if why := _js_incompatibility(src):
            return self.add(where, f"'source' uses {why}, which JavaScript reads differently or refuses "
                                   "(approuter compiles 'source' as a JavaScript RegExp)")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # "possible nested set": Python may change its meaning
                return re.compile(src, flags)
        except re.error as e:
            self.add(where, f"'source' is not a valid regular expression: {e.msg} at position {e.pos}")
        except Warning as e:
            self.add(where, f"'source' is ambiguous ({e}): escape the character")
        return None

    def destination(self, where: str, raw: dict[str, Any]) -> str | None:
        value = raw.get("destination")
        if "localDir" in raw:
            return self.add(where, "'localDir' (static files) is not supported by this gateway: serve the "
                                   "files from the app and route to it with a 'destination'")
        if "service" in raw:
            return self.add(where, "'service' routes (business services, HTML5 repository, user API) are not "
                                   "supported by this gateway: route to a 'destination'")
        if "destination" not in raw:
            return self.add(where, "no 'destination': every route of this gateway forwards to a destination")
        if not isinstance(value, str) or not value.strip():
            return self.add(where, f"'destination' must be the name of a destination, not {value!r}")
        if value == "*" or re.search(r"\$\d", value):
            return self.add(where, f"dynamic destination {value!r} is not supported (the user's token may "
                                   "only go to destinations this file names): name the destination")
        return value

    def auth_type(self, where: str, raw: dict[str, Any]) -> AuthType | None:
        value, given = raw.get("authenticationType"), "authenticationType" in raw
        if given and value == "basic":
            return self.add(where, "authenticationType 'basic' (passwords through the gateway) is not "
                                   "supported: use 'xsuaa', 'ias' or 'none'")
        if given and value not in ("xsuaa", "ias", "none"):
            return self.add(where, f"authenticationType {value!r} is not one of 'xsuaa', 'ias', 'none'")
        if self.method == "none":
            return "none"
        if not given and len(self.bound) == 1:
            return cast(AuthType, min(self.bound))  # approuter's default: the one that is bound
        if not given and self.bound:
            return self.add(where, "no authenticationType while both 'xsuaa' and 'identity' are bound: "
                                   "approuter then picks per subaccount at runtime; set 'ias' or 'xsuaa'")
        if not given:
            return self.add(where, "no authenticationType and no 'xsuaa' or 'identity' service is bound: "
                                   f"it defaults to 'xsuaa' and {APPROUTER_500}; bind one or set 'none'")
        if value != "none" and value not in self.bound:
            return self.add(where, f"authenticationType '{value}' but no '{BINDING_LABEL[value]}' service is "
                                   f"bound ({APPROUTER_500}): bind one or change authenticationType")
        return cast(AuthType, value)

    def scope(self, where: str, value: object, auth: AuthType | None) -> ScopeRule | None:
        if isinstance(value, dict):
            self.keys(value, where + "scope: ", SCOPE_KEYS)
        given = value if isinstance(value, dict) else {"default": value}
        forms = {k: _scope_names(v) for k, v in given.items()}
        if not forms or None in forms.values():
            return self.add(where, "'scope' must be a scope name, a non-empty list of them, or an object "
                                   "from upper-case HTTP methods and 'default' to those")
        if self.method == "none" or auth is None:
            return None  # ignored (approuter warns, as app() did), or the route is broken anyway
        if auth == "none":
            return self.add(where, "'scope' on a route with authenticationType 'none' is never checked "
                                   "(nobody logs in): drop it or require a login")
        if "xsuaa" not in self.bound:
            return self.add(where, "'scope' needs an 'xsuaa' binding: scopes come from XSUAA tokens, also "
                                   "after an IAS login")
        if self.xsappname is None and XSAPPNAME in json.dumps(value):
            return self.add(where, "'scope' uses $XSAPPNAME but the xsappname is unknown (the 'xsuaa' "
                                   "binding has it)")
        sets = {k: frozenset(n.replace(XSAPPNAME, self.xsappname or "") for n in names or ())
                for k, names in forms.items()}
        default = sets.pop("default", None)
        return ScopeRule(default, tuple(sorted(sets.items())))

    def logout(self, value: dict[str, Any]) -> LogoutConfig | None:
        where, before = "logout: ", len(self.problems)
        self.keys(value, where, LOGOUT_KEYS, frozenset({"backChannelLogoutEndpoint"}))
        if "logoutEndpoint" not in value:
            self.add(where, "no 'logoutEndpoint' (a path such as '/logout')")
        endpoint = self.get(value, "logoutEndpoint", _is_path, "a path such as '/logout'", where)
        page = self.get(value, "logoutPage", lambda v: _is_path(v) or bool(_URL.fullmatch(str(v))),
                        "a path on this gateway or an http(s) URL", where)
        method = self.get(value, "logoutMethod", ("GET", "POST").__contains__, "'GET' or 'POST'", where,
                          DEFAULT_LOGOUT_METHOD)
        csrf = self.get(value, "csrfProtection", _is_bool, "true or false", where, True)
        if "csrfProtection" in value and method == "GET":
            self.add(where, "'csrfProtection' applies only to logoutMethod 'POST' (a GET logout has none)")
        served = _is_path(page) and self.routes_complete and self.method == "route"
        route = self.first(page) if served else None
        if route and route.authentication_type != "none":
            self.add(where, f"logoutPage {page!r} is served by routes[{route.index}], which needs a login: "
                            "the user would be logged straight back in; make it authenticationType 'none'")
        if len(self.problems) > before:
            return None
        return LogoutConfig(endpoint, page, frozenset({method}), csrf)
