"""``python -m gateway``: serve the gateway on ``PORT`` (approuter's default 5000)."""

from __future__ import annotations

import os
import sys

from aiohttp import web

from gateway.app import create_app
from gateway.settings import GatewaySettings
from seccore import ConfigError
from seccore.logs import configure_logging


def main() -> int:
    # JSON lines on Cloud Foundry (or LOG_FORMAT=json), redacted, with the correlation id.
    default = "json" if "VCAP_APPLICATION" in os.environ else "text"
    json_lines = os.environ.get("LOG_FORMAT", default) == "json"
    configure_logging(json_lines=json_lines, loggers=("gateway", "seccore"))
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
