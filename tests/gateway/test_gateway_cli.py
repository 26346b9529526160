"""tradebot gateway serve / cert and tradebot account add --gateway (CONTRACTS section 7)."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

from sqlalchemy import select
from typer.testing import CliRunner

from engine.settings import SettingsError, load_settings
from engine.store.db import Database
from engine.store.models import ExecutionAccount
from tests.support.gateway import LOGIN, PASSWORD, SERVER, TOKEN, GatewayThread
from tradebot.cli import app

runner = CliRunner()
SECRET_KEY = "gateway-cli-test-secret-key-" + "s" * 16


def test_account_add_names_its_gateway(sqlite_url: str, sim: Path, gateway: GatewayThread) -> None:
    assert gateway.tls is not None
    env = {
        "DATABASE_URL": sqlite_url, "SECRET_KEY": SECRET_KEY, "LOG_LEVEL": "WARNING", "MT5_MODULE": "MetaTrader5",
        "MT5_GATEWAYS": f"win2={gateway.url}", "MT5_GATEWAY_TOKEN": TOKEN, "MT5_GATEWAY_CA": str(gateway.tls.cert),
    }  # fmt: skip
    args = [
        "account",
        "add",
        "--telegram-id",
        "77",
        "--kind",
        "mt5",
        "--login",
        str(LOGIN),
        "--server",
        SERVER,
    ]
    unknown = runner.invoke(app, [*args, "--password", PASSWORD, "--gateway", "win9"], env=env)
    # naming a gateway the settings do not list is a usage mistake (exit 2), like an unknown kind
    assert unknown.exit_code == 2 and "no MT5 gateway named 'win9'; configured: win2" in unknown.output
    paper = runner.invoke(
        app, ["account", "add", "--telegram-id", "77", "--kind", "paper", "--gateway", "win2"], env=env
    )
    assert paper.exit_code == 2 and "--gateway applies to --kind mt5 only" in paper.output
    good = runner.invoke(app, [*args, "--password", PASSWORD, "--gateway", "win2"], env=env)
    assert good.exit_code == 0, good.output
    assert f"mt5 {LOGIN}@{SERVER} via gateway win2, balance 10000" in good.output
    listed = runner.invoke(app, ["account", "list"], env=env)
    assert f"{LOGIN}@{SERVER} (win2)" in listed.output

    async def stored() -> str | None:
        db = Database(sqlite_url)
        async with db.session() as s:
            account = await s.scalar(select(ExecutionAccount).where(ExecutionAccount.login == str(LOGIN)))
        await db.dispose()
        return None if account is None else account.gateway

    assert asyncio.run(stored()) == "win2"


def test_gateway_serve_needs_a_token_and_a_valid_listen_address() -> None:
    no_token = runner.invoke(app, ["gateway", "serve"], env={"GATEWAY_TOKEN": "", "MT5_MODULE": "mt5sim"})
    assert no_token.exit_code == 2
    assert no_token.output.strip() == (
        "tradebot: configuration error: GATEWAY_TOKEN: required for `tradebot gateway serve` (32+ characters)"
    )
    short = runner.invoke(app, ["gateway", "serve"], env={"GATEWAY_TOKEN": "short"})
    assert short.exit_code == 2 and "GATEWAY_TOKEN: must be at least 32 characters" in short.output
    listen = runner.invoke(app, ["gateway", "serve", "--listen", "nowhere"], env={"GATEWAY_TOKEN": TOKEN})
    assert listen.exit_code == 2 and "--listen must be HOST:PORT" in listen.output
    module = runner.invoke(
        app, ["gateway", "serve"], env={"GATEWAY_TOKEN": TOKEN, "MT5_MODULE": "no_such_mt5"}
    )
    assert module.exit_code == 2 and "MT5_MODULE: cannot load 'no_such_mt5'" in module.output
    half = runner.invoke(app, ["gateway", "serve"], env={"GATEWAY_TOKEN": TOKEN, "GATEWAY_TLS_CERT": "x.crt"})
    assert half.exit_code == 2 and "set both or neither" in half.output


def test_gateway_cert_makes_a_pair_a_client_can_pin(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["gateway", "cert", "--host", "mt5-host.lan", "--host", "10.0.0.11", "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "gateway.key").stat().st_mode & 0o077 == 0
    context = ssl.create_default_context(cafile=str(tmp_path / "gateway.crt"))
    assert len(context.get_ca_certs()) == 1


def test_gateway_settings_are_checked() -> None:
    for bad, words in (
        ({"mt5_gateways": "win 2=https://h:1"}, "MT5_GATEWAYS: Value error, gateway name 'win 2'"),
        ({"mt5_gateways": "win2=ftp://h"}, "not an http:// or https:// URL"),
        ({"mt5_gateways": "win2"}, "is not name=value"),
        ({"gateway_terminals": "abc=C:/t.exe"}, "GATEWAY_TERMINALS"),
    ):
        try:
            load_settings(**bad)
        except SettingsError as exc:
            assert words.split(": Value error, ")[-1] in str(exc) and "\n" not in str(exc)
        else:
            raise AssertionError(f"{bad} was accepted")
    settings = load_settings(
        mt5_gateway_url="https://a:8765", mt5_gateways="win2=https://b:8765,win3=http://c:1"
    )
    assert settings.gateway_names() == ["default", "win2", "win3"]
