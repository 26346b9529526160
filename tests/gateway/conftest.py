"""Gateway suites: a fresh simulated trade server per test, and the gateway fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mt5sim import control
from tests.support.gateway import LOGIN, PASSWORD, SERVER


@pytest.fixture
def sim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = tmp_path / "mt5sim.sqlite3"
    monkeypatch.setenv("MT5SIM_STATE", str(path))
    control.ignore_market_hours(state=path)
    control.create_account(LOGIN, PASSWORD, server=SERVER, balance=10000, state=path)
    control.set_price("EURUSD", "1.10000", "1.10008", state=path)
    yield path
    control.close()
