"""Structured logging with the request's correlation id, and nothing secret in it.

On Cloud Foundry (``VCAP_APPLICATION`` set) or with ``LOG_FORMAT=json`` each record is one
JSON line. Tokens are never passed to a logger; as a second line of defence a filter
replaces anything shaped like a JWT or a bearer/basic credential before a record is written.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from contextvars import ContextVar

__all__ = ["configure_logging", "correlation_id", "new_correlation_id", "redact"]

correlation_id: ContextVar[str] = ContextVar("correlation_id", default="-")

_JWT = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.?[A-Za-z0-9_-]*")
# A credential after the scheme: 8+ token characters, at least one of them not a letter
# (so "bearer token" in a sentence stays readable).
_CREDENTIAL = re.compile(r"(?i)(?<![\w-])(bearer|basic)\s+(?=[A-Za-z]*[0-9._~+/=-])[A-Za-z0-9._~+/=-]{8,}")
_SECRET_FIELD = re.compile(r"(?i)(assertion|access_token|refresh_token|id_token|client_secret|"
                           r"password|code)=[^&\s]+")
_INCOMING_ID = re.compile(r"[A-Za-z0-9-]{8,64}")
_STANDARD = set(vars(logging.makeLogRecord({})))


def redact(text: str) -> str:
    """Replace JWTs, bearer/basic credentials and secret form fields in ``text``."""
    text = _JWT.sub("<jwt>", text)
    text = _CREDENTIAL.sub(lambda m: f"{m.group(1)} <redacted>", text)
    return _SECRET_FIELD.sub(lambda m: f"{m.group(1)}=<redacted>", text)


def new_correlation_id(incoming: str | None) -> str:
    """Reuse a well-formed incoming ``x-correlationid``, else make one."""
    if incoming and _INCOMING_ID.fullmatch(incoming):
        return incoming
    return str(uuid.uuid4())


class _CorrelationFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.correlation_id = correlation_id.get()
        return True


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "correlation_id": getattr(record, "correlation_id", "-"),
        }
        entry.update({k: v for k, v in vars(record).items()
                      if k not in _STANDARD and k not in entry and k != "message"})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, default=str))


def configure_logging(*, json_lines: bool, level: str = "INFO",
                      loggers: tuple[str, ...] = ("app", "seccore")) -> None:
    """Send the records of ``loggers`` to stderr, redacted, as JSON lines or plain text."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_CorrelationFilter())
    handler.setFormatter(_JsonFormatter() if json_lines else _TextFormatter(
        "%(asctime)s %(levelname)s %(name)s [%(correlation_id)s] %(message)s"))
    for name in loggers:
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.setLevel(level)
        logger.propagate = False
