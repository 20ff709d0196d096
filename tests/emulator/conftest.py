"""An emulator per test module, served on loopback over HTTPS with a CA made for the test."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from emulator import create_app
from emulator.config import EmulatorConfig, Urls, load_config
from emulator.pki import Pki, ensure_pki
from emulator.server import Servers, bind
from emulator.vcap import vcap_services

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class RunningEmulator:
    config: EmulatorConfig
    pki: Pki
    servers: Servers
    app: object

    @property
    def vcap_services(self) -> str:
        return json.dumps(vcap_services(self.config))

    @property
    def https(self) -> str:
        return self.config.urls.xsuaa


def start_emulator(workspace: Path, root: Path = ROOT, users: Path | None = None, **config: object
                   ) -> RunningEmulator:
    pki = ensure_pki(workspace)
    servers = bind(pki)
    urls = Urls(https_port=servers.https_port, http_port=servers.http_port)
    cfg = load_config(root, users or ROOT / "emulator" / "users.json", urls,
                      secrets_file=workspace / "secrets.json", **config)  # type: ignore[arg-type]
    app = create_app(cfg)
    servers.start(app)
    return RunningEmulator(cfg, pki, servers, app)


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningEmulator]:
    running = start_emulator(tmp_path_factory.mktemp("emulator"))
    try:
        yield running
    finally:
        running.servers.stop()
