"""Security core shared by the app and the gateway: bindings, token validation, the
jwt-bearer exchange and the iFlow call. It imports no web framework."""

from seccore.bindings import (
    Bindings,
    ClientCredentials,
    CpiBinding,
    IasBinding,
    IdentityBindings,
    XsuaaBinding,
    load_bindings,
    load_identity_bindings,
)
from seccore.errors import (
    AudienceMismatch,
    ConfigError,
    CrossSiteRefused,
    ExchangeError,
    IflowError,
    IssuerUntrusted,
    KeysUnavailable,
    ScopeMissing,
    SecurityError,
    SignatureInvalid,
    TokenError,
    TokenExpired,
    TokenKindRejected,
    TokenMalformed,
    TokenMissing,
)
from seccore.exchange import JWT_BEARER, ExchangedToken, JwtBearerExchange
from seccore.iflow import IflowClient, IflowResult
from seccore.jwks import JwksCache
from seccore.outbound import Timeouts, client_cert_files, make_session
from seccore.validation import LEEWAY_SECONDS, TokenValidator, ValidatedToken

__all__ = [
    "JWT_BEARER",
    "LEEWAY_SECONDS",
    "AudienceMismatch",
    "Bindings",
    "ClientCredentials",
    "ConfigError",
    "CpiBinding",
    "CrossSiteRefused",
    "ExchangeError",
    "ExchangedToken",
    "IasBinding",
    "IdentityBindings",
    "IflowClient",
    "IflowError",
    "IflowResult",
    "IssuerUntrusted",
    "JwksCache",
    "JwtBearerExchange",
    "KeysUnavailable",
    "ScopeMissing",
    "SecurityError",
    "SignatureInvalid",
    "Timeouts",
    "TokenError",
    "TokenExpired",
    "TokenKindRejected",
    "TokenMalformed",
    "TokenMissing",
    "TokenValidator",
    "ValidatedToken",
    "XsuaaBinding",
    "client_cert_files",
    "load_bindings",
    "load_identity_bindings",
    "make_session",
]
