"""Errors of the security core.

Every error carries the wire contract as class attributes (``status``, ``code``) and
a diagnosis for people: ``cause`` (what went wrong, in BTP terms) and ``fix`` (what to
change). Messages never contain a token, an assertion or a secret.

    SecurityError
    ├── ConfigError                 bindings or settings unusable (start-up)
    ├── TokenError                  401: the user's token is not accepted
    │   ├── TokenMissing
    │   ├── TokenMalformed
    │   ├── TokenExpired
    │   ├── SignatureInvalid
    │   ├── IssuerUntrusted
    │   ├── AudienceMismatch
    │   └── TokenKindRejected
    ├── ScopeMissing                403: valid token, required scope absent
    ├── CrossSiteRefused            403: a cross-site request may not set the iFlow off
    ├── KeysUnavailable             503: no keys to validate with (JWKS outage, none cached)
    ├── ExchangeError               the jwt-bearer exchange failed (status per cause)
    └── IflowError                  the iFlow call failed (status per cause)
"""

from __future__ import annotations

__all__ = [
    "AudienceMismatch",
    "ConfigError",
    "CrossSiteRefused",
    "ExchangeError",
    "IflowError",
    "IssuerUntrusted",
    "KeysUnavailable",
    "ScopeMissing",
    "SecurityError",
    "SignatureInvalid",
    "TokenError",
    "TokenExpired",
    "TokenKindRejected",
    "TokenMalformed",
    "TokenMissing",
]


class SecurityError(Exception):
    """Base class: a failure with a status, a short code and a diagnosis."""

    status: int = 500
    code: str = "server_error"
    fix: str = ""
    #: seconds after which a retry may succeed (503/429), sent as Retry-After
    retry_after: int | None = None

    def __init__(self, cause: str, fix: str | None = None, *, step: str = "") -> None:
        super().__init__(cause)
        self.cause = cause
        if fix is not None:
            self.fix = fix
        #: which step of the request failed ("validate", "exchange", "iflow")
        self.step = step

    def to_dict(self) -> dict[str, object]:
        """The diagnosis as JSON-ready data (safe to show to the user)."""
        return {"error": self.code, "status": self.status, "step": self.step,
                "cause": self.cause, "fix": self.fix}


class ConfigError(SecurityError):
    """The bindings or settings are unusable; raised once at start-up with every problem."""

    code = "invalid_configuration"

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        text = "invalid configuration:\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(text, "fix the bindings (VCAP_SERVICES) or the environment and restart")


class TokenError(SecurityError):
    """The user's token is not accepted (401 with WWW-Authenticate: Bearer)."""

    status = 401
    code = "invalid_token"
    fix = "log in again to get a new token"


class TokenMissing(TokenError):
    code = "missing_token"
    fix = "send the user's JWT as 'Authorization: Bearer <token>' (the gateway does this for you)"


class TokenMalformed(TokenError):
    pass


class TokenExpired(TokenError):
    pass


class SignatureInvalid(TokenError):
    fix = "the token was not signed by a key of the bound XSUAA or IAS instance; log in again"


class IssuerUntrusted(TokenError):
    pass


class AudienceMismatch(TokenError):
    pass


class TokenKindRejected(TokenError):
    pass


class ScopeMissing(SecurityError):
    status = 403
    code = "insufficient_scope"


class CrossSiteRefused(SecurityError):
    status = 403
    code = "cross_site_request"
    fix = "open the page from this site (a link or form of another site may not call the iFlow)"


class KeysUnavailable(SecurityError):
    status = 503
    code = "keys_unavailable"
    fix = "the identity service's key endpoint is unreachable; retry in a moment"


class ExchangeError(SecurityError):
    """The jwt-bearer exchange failed; ``status`` is set per cause."""

    code = "exchange_failed"

    def __init__(self, cause: str, fix: str = "", *, status: int = 502,
                 server_error: str = "", server_description: str = "",
                 retry_after: int | None = None) -> None:
        super().__init__(cause, fix, step="exchange")
        self.status = status
        self.retry_after = retry_after
        #: the token endpoint's own error code and description, kept for the diagnosis
        self.server_error = server_error
        self.server_description = server_description

    def to_dict(self) -> dict[str, object]:
        data = super().to_dict()
        data["server"] = {"error": self.server_error, "error_description": self.server_description}
        return data


class IflowError(SecurityError):
    """The iFlow call failed; ``status`` is set per cause."""

    code = "iflow_failed"

    def __init__(self, cause: str, fix: str = "", *, status: int = 502,
                 upstream_status: int | None = None, upstream_body: str = "",
                 retry_after: int | None = None) -> None:
        super().__init__(cause, fix, step="iflow")
        self.status = status
        self.retry_after = retry_after
        self.upstream_status = upstream_status
        #: the iFlow's answer (truncated, shown escaped), kept for the diagnosis
        self.upstream_body = upstream_body

    def to_dict(self) -> dict[str, object]:
        data = super().to_dict()
        data["upstream"] = {"status": self.upstream_status, "body": self.upstream_body}
        return data
