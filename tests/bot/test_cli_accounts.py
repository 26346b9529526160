"""tradebot account add / list / remove (CONTRACTS section 3), paper and MT5 (the simulated terminal)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mt5sim import control
from tests.support.bot_world import SECRET_KEY
from tradebot.cli import app

runner = CliRunner()


def env(url: str, **extra: str) -> dict[str, str]:
    values = {"DATABASE_URL": url, "SECRET_KEY": SECRET_KEY, "LOG_LEVEL": "WARNING", "MT5_MODULE": "mt5sim"}
    values.update(extra)
    return values


@pytest.fixture
def sim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = tmp_path / "mt5sim.sqlite3"
    monkeypatch.setenv("MT5SIM_STATE", str(path))
    control.create_account(6001, "pw-6001", server="Sim-Demo", balance=5000, state=path)
    yield path
    control.close()


def test_paper_account_add_list_remove(sqlite_url: str) -> None:
    added = runner.invoke(
        app,
        ["account", "add", "--telegram-id", "4242", "--kind", "paper", "--balance", "2500"],
        env=env(sqlite_url),
    )
    assert added.exit_code == 0, added.output
    match = re.search(r"account (\d+): paper, balance 2500 USD, owner 4242", added.output)
    assert match, added.output
    account_id = match.group(1)

    listed = runner.invoke(app, ["account", "list"], env=env(sqlite_url))
    assert (
        listed.exit_code == 0
        and "4242" in listed.output
        and "2500 USD" in listed.output
        and "active" in listed.output
    )

    removed = runner.invoke(app, ["account", "remove", account_id], env=env(sqlite_url))
    assert removed.exit_code == 0 and f"account {account_id} removed" in removed.output
    assert runner.invoke(app, ["account", "list"], env=env(sqlite_url)).output.strip() == "no accounts"
    everything = runner.invoke(app, ["account", "list", "--all"], env=env(sqlite_url))
    assert "inactive" in everything.output

    again = runner.invoke(app, ["account", "remove", account_id], env=env(sqlite_url))
    assert again.exit_code == 1 and f"no active account {account_id}" in again.output


def test_bad_arguments_fail_with_one_line(sqlite_url: str) -> None:
    kind = runner.invoke(app, ["account", "add", "--telegram-id", "1", "--kind", "gold"], env=env(sqlite_url))
    assert kind.exit_code == 2 and "--kind must be paper or mt5" in kind.output
    balance = runner.invoke(
        app,
        ["account", "add", "--telegram-id", "1", "--kind", "paper", "--balance", "-5"],
        env=env(sqlite_url),
    )
    assert balance.exit_code == 2 and "positive" in balance.output
    mt5 = runner.invoke(app, ["account", "add", "--telegram-id", "1", "--kind", "mt5"], env=env(sqlite_url))
    assert mt5.exit_code == 2 and "--login and --server are required" in mt5.output


def test_mt5_account_is_verified_then_stored(sqlite_url: str, sim: Path) -> None:
    args = [
        "account",
        "add",
        "--telegram-id",
        "4343",
        "--kind",
        "mt5",
        "--login",
        "6001",
        "--server",
        "Sim-Demo",
    ]
    wrong = runner.invoke(app, [*args, "--password", "nope"], env=env(sqlite_url))
    assert wrong.exit_code == 1 and "nope" not in wrong.output
    good = runner.invoke(app, [*args, "--password", "pw-6001"], env=env(sqlite_url))
    assert good.exit_code == 0, good.output
    assert "mt5 6001@Sim-Demo, balance 5000" in good.output and "pw-6001" not in good.output
    listed = runner.invoke(app, ["account", "list", "--telegram-id", "4343"], env=env(sqlite_url))
    assert "6001@Sim-Demo" in listed.output
    assert Decimal("5000") == Decimal(re.search(r"balance (\d+)", good.output).group(1))  # type: ignore[union-attr]
