"""Issue 19 item 6: flags look like flags, every usage or validation mistake exits 2 with one line,
`account add` refuses MT5 options on a paper account and warns about users who never sent /start,
and `producer list` has a header row."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from tests.support.bot_world import SECRET_KEY
from tradebot.cli import app

runner = CliRunner()


def env(url: str, **extra: str) -> dict[str, str]:
    values = {"DATABASE_URL": url, "SECRET_KEY": SECRET_KEY, "LOG_LEVEL": "WARNING", "MT5_MODULE": "mt5sim"}
    values.update(extra)
    return values


def commands(group: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    for name, sub in (getattr(group, "commands", None) or {}).items():
        yield from commands(sub, (*path, name))


def test_no_help_page_shows_a_bool_placeholder() -> None:
    root = typer.main.get_command(app)
    paths = list(commands(root))
    assert ("account", "list") in paths and ("producer", "add") in paths
    for path in paths:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "<bool>" not in result.output, (path, result.output)
    listing = runner.invoke(app, ["account", "list", "--help"]).output
    assert "--all " in listing


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["producer", "add", "p1", "--rate", "abc"], "--rate must be a number"),
        (["producer", "add", "p1", "--rate", "-1"], "--rate must be a number above 0"),
        (["producer", "add", "p1", "--rate", "0"], "--rate must be a number above 0"),
        (["account", "add", "--telegram-id", "5", "--kind", "foo"], "--kind must be paper or mt5"),
        (
            ["account", "add", "--telegram-id", "5", "--kind", "mt5", "--login", "abc", "--server", "S", "--password", "p"],
            "--login must be a number",
        ),
        (["account", "add", "--telegram-id", "5", "--kind", "paper", "--login", "123"], "--login only apply"),
        (["account", "add", "--telegram-id", "5", "--kind", "paper", "--balance", "-3"], "--balance must be a positive"),
        (["account", "add", "--telegram-id", "5", "--kind", "mt5", "--login", "1", "--server", "S", "--balance", "9"], "--balance only applies"),
    ],
)  # fmt: skip
def test_validation_errors_exit_2_with_one_line(sqlite_url: str, args: list[str], says: str) -> None:
    result = runner.invoke(app, args, env=env(sqlite_url))
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("tradebot: ") and says in lines[0], lines


@pytest.mark.parametrize(
    "args",
    [
        ["producer", "add", "p1"],
        ["account", "add", "--telegram-id", "5", "--kind", "mt5", "--login", "1", "--server", "S", "--password", "p"],
    ],
)  # fmt: skip
def test_a_missing_secret_key_exits_2(sqlite_url: str, args: list[str]) -> None:
    result = runner.invoke(
        app, args, env={"DATABASE_URL": sqlite_url, "SECRET_KEY": "", "LOG_LEVEL": "WARNING"}
    )
    assert result.exit_code == 2, result.output
    assert "SECRET_KEY" in result.output


def test_a_duplicate_producer_name_exits_2(sqlite_url: str) -> None:
    assert runner.invoke(app, ["producer", "add", "dup"], env=env(sqlite_url)).exit_code == 0
    again = runner.invoke(app, ["producer", "add", "dup"], env=env(sqlite_url))
    assert again.exit_code == 2 and "already exists" in again.output


def test_account_add_warns_about_a_user_who_never_sent_start(sqlite_url: str) -> None:
    result = runner.invoke(
        app, ["account", "add", "--telegram-id", "777001", "--kind", "paper"], env=env(sqlite_url)
    )
    assert result.exit_code == 0, result.output
    assert "777001 has never sent /start" in result.output
    assert "account " in result.output and "owner 777001" in result.output


def test_producer_list_has_a_header_row(sqlite_url: str) -> None:
    assert runner.invoke(app, ["producer", "add", "alpha"], env=env(sqlite_url)).exit_code == 0
    lines = runner.invoke(app, ["producer", "list"], env=env(sqlite_url)).output.splitlines()
    assert lines[0].split() == ["ID", "STATUS", "RATE", "LIMIT", "NAME"]
    assert lines[1].split()[-1] == "alpha"
