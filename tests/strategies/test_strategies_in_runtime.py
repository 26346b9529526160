"""``STRATEGIES`` inside the running product: the producer is created, reads the simulated terminal
and its signal arrives through the product's own webhook; a bad value stops start-up in one line."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from engine.settings import SettingsError, load_settings
from engine.store.models import Producer, Signal
from tests.support.ports import free_port
from tests.support.queries import rows
from tests.support.strategy_terminal import LOGIN, PASSWORD, SEARCH_FROM, latest_setup
from tests.support.waiting import eventually
from tradebot.runtime import Runtime, RuntimeOptions


async def test_strategies_setting_runs_fib_rsi_in_the_product(
    tmp_path: Path, sqlite_url: str, terminal: Path
) -> None:
    setup = latest_setup(terminal, SEARCH_FROM)
    from mt5sim import control

    control.set_time(setup.placed_at + timedelta(minutes=20), state=terminal)
    settings = load_settings(
        _env_file=None,
        database_url=sqlite_url,
        secret_key="k" * 40,
        http_port=free_port(),
        instruments="XAUUSD,EURUSD",
        mt5_module="mt5sim",
        mt5_path=str(terminal),
        mt5_login=LOGIN,
        mt5_password=PASSWORD,
        strategies="fib-rsi:XAUUSD",
        strategy_history_bars=600,
        strategy_poll_seconds=0.2,
    )
    runtime = Runtime(settings, RuntimeOptions(with_bot=False))
    await runtime.start()
    try:
        stored: list[Signal] = await eventually(
            lambda: rows(runtime.engine.db, Signal), timeout=60, interval=0.1
        )
        assert [s.external_id for s in stored] == [setup.setup_id]
        (producer,) = await rows(runtime.engine.db, Producer)
        assert producer.name == "strategy-fib-rsi" and stored[0].producer_id == producer.id
    finally:
        await runtime.stop()


@pytest.mark.parametrize(
    ("value", "message"),
    [("macd:XAUUSD", "unknown strategy 'macd'"), ("fib-rsi", "fib-rsi: name its symbols")],
)
def test_bad_strategies_setting_is_one_line(value: str, message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(_env_file=None, strategies=value)
    assert str(caught.value).startswith("STRATEGIES: ") and message in str(caught.value)
