"""Fixtures that run a suite twice: straight on the simulated terminal, and through the gateway.

``mt5_module`` is the ``MT5_MODULE`` string a test builds its brokers with: ``mt5sim`` (direct),
or ``engine.brokers.remote`` with a TLS gateway serving ``mt5sim`` (gateway). Import the
fixtures into a suite's conftest to use them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.brokers import remote
from tests.gateway.harness import GatewayThread, Tls


@pytest.fixture(scope="session")
def gateway_tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    """A self-signed certificate for 127.0.0.1, made at test time; clients pin it."""
    return Tls.make(tmp_path_factory.mktemp("gateway-tls"))


@pytest.fixture
def gateway(gateway_tls: Tls) -> Iterator[GatewayThread]:
    """A TLS gateway serving mt5sim, the default gateway of ``engine.brokers.remote``."""
    gw = GatewayThread(gateway_tls).start()
    remote.configure({"default": gw.endpoint()})
    yield gw
    remote.configure({})
    gw.stop()


@pytest.fixture(params=["direct", "gateway"])
def mt5_module(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "direct":
        return "mt5sim"
    request.getfixturevalue("gateway")
    return "engine.brokers.remote"
