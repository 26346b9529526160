"""Gateway health in the engine's status: each gateway of the settings is probed when /status, the
admin API or `tradebot status` asks, and shown up or down with the reason."""

from __future__ import annotations

from typing import Any

from bot.i18n import build_i18n
from bot.render import in_locale
from bot.status import status_text
from engine.ops.views import GatewayStatus, as_json
from engine.store.db import Database
from tests.support.gateway import TOKEN, GatewayThread
from tests.support.ops import settings_for
from tradebot.app import build_services

I18N = build_i18n()


async def test_status_probes_each_gateway_and_says_which_is_down(
    sqlite_db: Database, gateway: GatewayThread
) -> None:
    settings = settings_for(
        sqlite_db.url,
        mt5_module="engine.brokers.remote",
        mt5_gateway_url=gateway.url,
        mt5_gateway_token=TOKEN,
        mt5_gateway_ca=str(gateway.endpoint().ca),
        mt5_gateways={"win2": "https://127.0.0.1:9"},  # nothing listens there
    )
    services = build_services(settings, db=sqlite_db)
    try:
        status = await services.ops.status(live_seconds=3.0)
    finally:
        await services.close()
    assert [g.name for g in status.gateways] == ["default", "win2"]
    default, win2 = status.gateways
    assert default == GatewayStatus("default", True, None)
    assert not win2.up and win2.detail is not None and "unreachable" in win2.detail

    shown: dict[str, Any] = as_json(status)
    assert shown["gateways"][0] == {"name": "default", "up": True, "detail": None}
    with in_locale(I18N, "en"):
        text = status_text(status)
    assert "🖥 Gateway default: up" in text
    assert "🖥 Gateway win2: DOWN (gateway win2 unreachable" in text
    with in_locale(I18N, "es"):
        assert "🖥 Pasarela win2: CAÍDA" in status_text(status)


async def test_without_gateways_status_lists_none(sqlite_db: Database) -> None:
    services = build_services(settings_for(sqlite_db.url), db=sqlite_db)
    try:
        status = await services.ops.status(live_seconds=1.0)
    finally:
        await services.close()
    assert status.gateways == ()
    with in_locale(I18N, "en"):
        assert "Gateway" not in status_text(status)
