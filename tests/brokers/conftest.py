"""Fixtures for the simulated MT5 terminal and the MT5 broker: a fresh state file per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from engine.brokers.mt5 import MT5Broker, create_mt5_broker
from mt5sim import control
from tests.support.mt5 import LOGIN, PASSWORD, SERVER


@pytest.fixture
def sim_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh state file (inherited by child processes through MT5SIM_STATE); hours ignored."""
    path = tmp_path / "mt5sim.sqlite3"
    monkeypatch.setenv("MT5SIM_STATE", str(path))
    control.ignore_market_hours(state=path)
    yield path
    control.close()


@pytest.fixture
def account(sim_state: Path) -> int:
    control.create_account(LOGIN, PASSWORD, server=SERVER, balance=10000, state=sim_state)
    return LOGIN


@pytest.fixture
async def broker(account: int, mt5_module: str) -> AsyncIterator[MT5Broker]:
    """The broker straight on the simulated terminal, and again through the gateway."""
    b = create_mt5_broker(mt5_module, account, PASSWORD, SERVER, backoff_initial=0.01, backoff_max=0.05)
    await b.connect()
    yield b
    await b.close()
