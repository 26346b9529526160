"""HTTP as Telegram speaks it: tokens, paths, form/multipart/JSON bodies, status = error_code."""

from __future__ import annotations

import json

import aiohttp
import pytest
from aiogram.exceptions import TelegramNotFound, TelegramUnauthorizedError

from emulator import BotAPIEmulator
from tests.support.emulator_world import CheckedClient, EmulatorFactory, make_bot
from tests.support.telegram import BOT_ID, OTHER_TOKEN, TOKEN


async def raw(emulator: BotAPIEmulator, path: str, **kwargs: object) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as http:
        async with http.post(emulator.base_url + path, **kwargs) as resp:  # type: ignore[arg-type]
            return resp.status, await resp.json()


async def test_get_me_with_aiogram_names_the_bot_after_its_token(emulator: BotAPIEmulator) -> None:
    bot = make_bot(emulator.base_url)
    try:
        me = await bot.get_me()
    finally:
        await bot.session.close()
    assert me.id == BOT_ID and me.is_bot and me.username == f"bot{BOT_ID}_bot"
    assert me.can_join_groups is True and me.supports_inline_queries is False


@pytest.mark.parametrize("token", ["123:short", "0:" + "A" * 35, "123456789:" + "A" * 34 + "!"])
async def test_a_malformed_token_is_unauthorized(emulator: BotAPIEmulator, token: str) -> None:
    bot = make_bot(emulator.base_url, token=token)
    try:
        with pytest.raises(TelegramUnauthorizedError, match="Unauthorized"):
            await bot.get_me()
    finally:
        await bot.session.close()


@pytest.mark.parametrize("token", ["abc:" + "A" * 35, "123456789", "123456789:" + "A" * 36])
async def test_tokens_aiogram_would_refuse_are_unauthorized_too(emulator: BotAPIEmulator, token: str) -> None:
    status, body = await raw(emulator, f"/bot{token}/getMe")
    assert (status, body) == (401, {"ok": False, "error_code": 401, "description": "Unauthorized"})


async def test_the_same_bot_id_with_another_secret_is_unauthorized(emulator: BotAPIEmulator) -> None:
    status, body = await raw(emulator, f"/bot{TOKEN}/getMe")
    assert status == 200
    impostor = TOKEN.split(":")[0] + ":" + "Z" * 35
    status, body = await raw(emulator, f"/bot{impostor}/getMe")
    assert (status, body) == (401, {"ok": False, "error_code": 401, "description": "Unauthorized"})


async def test_each_token_is_its_own_bot_with_its_own_message_ids(
    emulator: BotAPIEmulator, ctl: CheckedClient
) -> None:
    first, second = make_bot(emulator.base_url), make_bot(emulator.base_url, token=OTHER_TOKEN)
    try:
        assert (await first.get_me()).id != (await second.get_me()).id
        await ctl.add_user(7, "Bob")
        a1 = await first.send_message(7, "one")
        a2 = await first.send_message(7, "two")
        b1 = await second.send_message(7, "three")
        assert (a1.message_id, a2.message_id, b1.message_id) == (1, 2, 1)
        assert [m["text"] for m in await ctl.messages(7, bot_id=second.id)] == ["three"]
    finally:
        await first.session.close()
        await second.session.close()


async def test_unknown_methods_and_paths_are_not_found(emulator: BotAPIEmulator) -> None:
    bot = make_bot(emulator.base_url)
    try:
        await bot.get_me()
        status, body = await raw(emulator, f"/bot{TOKEN}/sendTelepathy")
        assert (status, body["description"]) == (404, "Not Found: method not found")
        status, body = await raw(emulator, "/nothing/here")
        assert (status, body) == (404, {"ok": False, "error_code": 404, "description": "Not Found"})
        with pytest.raises(TelegramNotFound):
            from aiogram.methods import GetMe

            class Missing(GetMe):
                __api_method__ = "getNothing"

            await bot(Missing())
    finally:
        await bot.session.close()


async def test_method_names_are_case_insensitive_and_get_with_a_query_string_works(
    emulator: BotAPIEmulator,
) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{emulator.base_url}/bot{TOKEN}/GETME") as resp:
            assert resp.status == 200 and (await resp.json())["result"]["id"] == BOT_ID
        async with http.get(f"{emulator.base_url}/bot{TOKEN}/getUpdates", params={"offset": "5"}) as resp:
            assert (await resp.json()) == {"ok": True, "result": []}


async def test_json_and_urlencoded_bodies_are_accepted(emulator: BotAPIEmulator, ctl: CheckedClient) -> None:
    await raw(emulator, f"/bot{TOKEN}/getMe")
    await ctl.add_user(7, "Bob")
    markup = {"inline_keyboard": [[{"text": "Go", "callback_data": "go"}]]}
    status, body = await raw(
        emulator, f"/bot{TOKEN}/sendMessage", json={"chat_id": 7, "text": "json", "reply_markup": markup}
    )
    assert status == 200 and body["result"]["reply_markup"] == markup  # type: ignore[index]
    form = {"chat_id": "7", "text": "<b>form</b>", "parse_mode": "HTML", "reply_markup": json.dumps(markup)}
    status, body = await raw(emulator, f"/bot{TOKEN}/sendMessage", data=form)
    result = body["result"]
    assert status == 200
    assert result["text"] == "form" and result["entities"] == [{"type": "bold", "offset": 0, "length": 4}]  # type: ignore[index]


async def test_error_status_equals_error_code_and_objects_must_parse(
    emulator: BotAPIEmulator, ctl: CheckedClient
) -> None:
    await raw(emulator, f"/bot{TOKEN}/getMe")
    await ctl.add_user(7, "Bob")
    status, body = await raw(
        emulator, f"/bot{TOKEN}/sendMessage", data={"chat_id": "7", "text": "x", "reply_markup": "{nope"}
    )
    assert (status, body["error_code"]) == (400, 400)
    assert body["description"] == "Bad Request: can't parse reply keyboard markup JSON object"
    status, body = await raw(emulator, f"/bot{TOKEN}/sendMessage", data={"chat_id": "99", "text": "x"})
    assert (status, body["description"]) == (400, "Bad Request: chat not found")


async def test_make_app_embeds_in_another_server(spec: object) -> None:
    from aiohttp import web

    emulator = BotAPIEmulator()
    runner = web.AppRunner(emulator.make_app())
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    bot = make_bot(base)
    try:
        assert (await bot.get_me()).id == BOT_ID
        assert emulator.base_url == base
        from aiogram.types import LabeledPrice

        link = await bot.create_invoice_link("Pro", "Month", "p", "XTR", [LabeledPrice(label="x", amount=5)])
        assert link.startswith(base + "/_emulator/invoice/")
        async with aiohttp.ClientSession() as http, http.get(link) as resp:
            assert (await resp.json())["total_amount"] == 5
    finally:
        await bot.session.close()
        await runner.cleanup()


async def test_an_oversized_request_gets_a_json_413(make_emulator: EmulatorFactory) -> None:
    from aiogram.exceptions import TelegramEntityTooLarge
    from aiogram.types import BufferedInputFile

    emulator = await make_emulator(max_request_bytes=4096)
    bot = make_bot(emulator.base_url)
    try:
        await bot.get_me()
        with pytest.raises(TelegramEntityTooLarge, match="Request Entity Too Large"):
            await bot.send_document(1, BufferedInputFile(b"\0" * 5000, "big.bin"))
    finally:
        await bot.session.close()
