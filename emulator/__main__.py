"""``python -m emulator [run|lint]``.

``run`` starts the emulated IAS, XSUAA and CPI on loopback and writes, into the workspace
folder, the CA (``ca.pem``) and the bindings the app and the gateway get
(``vcap-services.json``); ``lint`` checks the deploy files for the mistakes that break
the scenario on BTP.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
from pathlib import Path

from emulator import create_app
from emulator.config import Urls, load_config
from emulator.pki import ensure_pki
from emulator.server import bind
from emulator.vcap import destinations, vcap_services

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emulator", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run", help="start the emulator")
    run.add_argument("--root", type=Path, default=ROOT, help="folder of the deploy files")
    run.add_argument("--users", type=Path, default=ROOT / "emulator" / "users.json")
    run.add_argument("--workspace", type=Path, default=ROOT / "var" / "emulator")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--https-port", type=int, default=8443)
    run.add_argument("--http-port", type=int, default=8081)
    run.add_argument("--gateway-origin", action="append", default=[],
                     help="a local gateway origin whose /login/callback etc. may be redirected to")
    run.add_argument("--x509", action="store_true", help="bind CPI with a client certificate, not a secret")
    run.add_argument("--app-url", default="http://localhost:8080",
                     help="where the app listens, for the gateway's destinations")
    lint = sub.add_parser("lint", help="check the deploy files")
    lint.add_argument("--root", type=Path, default=ROOT)
    lint.add_argument("--users", type=Path, default=ROOT / "emulator" / "users.json")
    args = parser.parse_args(argv)
    if args.command == "lint":
        from emulator.lint import main as lint_main

        return lint_main(args.root, args.users)
    if args.command in (None, "run"):
        return _run(args if args.command else parser.parse_args(["run", *(argv or sys.argv[1:])]))
    return 2


def _run(args: argparse.Namespace) -> int:
    pki = ensure_pki(args.workspace)
    servers = bind(pki, host=args.host, https_port=args.https_port, http_port=args.http_port)
    urls = Urls(https_port=servers.https_port, http_port=servers.http_port)
    client_cert = pki.client_cert_file.read_text() if args.x509 else None
    config = load_config(args.root, args.users, urls, secrets_file=args.workspace / "secrets.json",
                         certificate_pem=client_cert, local_origins=tuple(args.gateway_origin))
    app = create_app(config)
    bindings = vcap_services(config, x509_cert=client_cert,
                             x509_key=pki.client_key_file.read_text() if args.x509 else None)
    vcap_file = args.workspace / "vcap-services.json"
    vcap_file.write_text(json.dumps(bindings, indent=1))
    vcap_file.chmod(0o600)
    destinations_file = args.workspace / "destinations.json"
    destinations_file.write_text(json.dumps(destinations(args.app_url), indent=1))
    servers.start(app)
    print(json.dumps({"ready": True, "https": urls.xsuaa, "ias": urls.ias, "browser": urls.browser,
                      "ca_file": str(pki.ca_file), "vcap_services_file": str(vcap_file),
                      "destinations_file": str(destinations_file)}), flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    servers.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
