"""``python -m gateway``: serve the gateway on ``PORT`` (approuter's default 5000)."""

from __future__ import annotations

import logging
import os
import sys

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from gateway.app import create_app
from gateway.settings import GatewaySettings
from seccore import ConfigError
from seccore.logs import configure_logging


def quiet_malformed_requests(record: logging.LogRecord) -> bool:
    """aiohttp logs each request its parser refuses (400) as an ERROR with a traceback: anyone
    sending garbage would flood the log and page an operator. One INFO line without the
    traceback (whose text may echo the sender's bytes) says enough."""
    error = record.exc_info[1] if record.exc_info else None
    if isinstance(error, HttpProcessingError):
        record.levelno, record.levelname = logging.INFO, "INFO"
        record.msg, record.args = "malformed request refused with %s", (error.code,)
        record.exc_info, record.exc_text = None, None
    return True


def main() -> int:
    # JSON lines on Cloud Foundry (or LOG_FORMAT=json), redacted, with the correlation id.
    default = "json" if "VCAP_APPLICATION" in os.environ else "text"
    json_lines = os.environ.get("LOG_FORMAT", default) == "json"
    configure_logging(json_lines=json_lines, loggers=("gateway", "seccore", "aiohttp.server"))
    logging.getLogger("aiohttp.server").addFilter(quiet_malformed_requests)
    try:
        settings = GatewaySettings.from_env()
    except ConfigError as exc:
        print(exc, file=sys.stderr)  # every problem at once, before anything listens
        return 2
    # A listen backlog as deep as the 1,000 concurrent requests the gateway is sized for
    # (aiohttp's default of 128 made bursts wait for the client's SYN retry; bench/README.md).
    web.run_app(create_app(settings), host=settings.host, port=settings.port, access_log=None,
                print=lambda text: print(text, flush=True), handler_cancellation=True, backlog=1024)
    return 0


if __name__ == "__main__":
    sys.exit(main())
