"""Webhook mode on the engine's aiohttp app, and the whole path from the producer's HTTP webhook."""

from __future__ import annotations

import json

import pytest
from aiohttp import ClientSession
from sqlalchemy import select

from engine.settings import SettingsError
from engine.store.models import Decision, Order
from tests.support.bot_world import World, WorldFactory
from tests.support.telegram import TOKEN, buttons


async def test_webhook_mode_receives_updates_and_checks_the_secret(world_factory: WorldFactory) -> None:
    world = await world_factory(telegram_mode="webhook")
    async with ClientSession() as http:
        async with http.get(f"{world.emulator.base_url}/bot{TOKEN}/getWebhookInfo") as resp:
            info = (await resp.json())["result"]
        assert info["url"] == f"http://127.0.0.1:{world.http_port}/telegram/webhook"
        update = {
            "update_id": 1,
            "message": {"message_id": 1, "date": 0, "chat": {"id": 1, "type": "private"}},
        }
        url = f"http://127.0.0.1:{world.http_port}/telegram/webhook"
        async with http.post(
            url, data=json.dumps(update), headers={"X-Telegram-Bot-Api-Secret-Token": "wrong"}
        ) as r:
            assert r.status == 401
        async with http.post(url, data=json.dumps(update)) as r:
            assert r.status == 401

    welcome = await world.subscribe(601, "es")  # every update below arrives by webhook
    assert "cuenta de papel" in welcome["text"]
    await world.accept_signal()
    dm = await world.wait_message(601, lambda m: bool(buttons(m)))
    answer = await world.tap(601, 601, dm["message_id"], buttons(dm)[0])
    assert answer["text"] == "✅ Aprobada. Enviando la orden…"
    await world.wait_message(601, lambda m: m["message_id"] == dm["message_id"] and "Ejecutada" in m["text"])


async def test_webhook_answers_503_while_the_bot_is_stopped(world_factory: WorldFactory) -> None:
    world = await world_factory(telegram_mode="webhook")
    await world.rt().stop()
    update = {"update_id": 2, "message": {"message_id": 1, "date": 0, "chat": {"id": 1, "type": "private"}}}
    async with (
        ClientSession() as http,
        http.post(
            f"http://127.0.0.1:{world.http_port}/telegram/webhook",
            data=json.dumps(update),
            headers={"X-Telegram-Bot-Api-Secret-Token": "hook-secret_1"},
        ) as r,
    ):
        assert r.status == 503  # Telegram keeps the update and retries


async def test_producer_webhook_to_filled_order_end_to_end(world: World) -> None:
    await world.subscribe(610)
    created = await world.post_signal(
        {
            "instrument": "eurusd",
            "side": "buy",
            "entry": "1.10010",
            "sl": "1.09800",
            "tp": "1.10400",
            "note": "from the producer <3",
        }
    )
    dm = await world.wait_message(610, lambda m: bool(buttons(m)))
    assert "BUY EURUSD" in dm["text"] and "from the producer <3" in dm["text"] and "R:R 1.86" in dm["text"]
    await world.tap(610, 610, dm["message_id"], buttons(dm)[0])
    done = await world.wait_message(
        610, lambda m: m["message_id"] == dm["message_id"] and "Filled" in m["text"]
    )
    assert "0." in done["text"] and "lots EURUSD at 1.1001" in done["text"]
    async with world.db.session() as session:
        decision = await session.scalar(select(Decision))
        order = await session.scalar(select(Order))
    assert decision is not None and decision.signal_id == created["id"]
    assert order is not None and order.status == "filled" and order.decision_id == decision.id


async def test_webhook_mode_needs_a_valid_secret(world_factory: WorldFactory) -> None:
    world = await world_factory(telegram_mode="webhook", webhook_secret="has spaces!", start=False)
    with pytest.raises(SettingsError, match="WEBHOOK_SECRET"):
        await world.start_bot()
    assert not world.rt().running
