"""The emulator's method table against the Bot API spec file, and the spec checker itself."""

from __future__ import annotations

import aiohttp
import pytest

from emulator import BotAPIEmulator
from emulator.spec import REQUIRED, SpecChecker
from tests.support.telegram import TOKEN


def test_every_method_exists_in_the_spec_with_the_same_required_parameters(spec: SpecChecker) -> None:
    for name, required in REQUIRED.items():
        assert name in spec.spec["methods"], name
        fields = spec.spec["methods"][name].get("fields", [])
        expected = tuple(f["name"] for f in fields if f["required"])
        assert required == expected, (name, required, expected)


def test_methods_the_bot_needs_are_all_answered() -> None:
    needed = {
        "getMe", "getUpdates", "setWebhook", "deleteWebhook", "getWebhookInfo", "sendMessage",
        "editMessageText", "editMessageReplyMarkup", "deleteMessage", "answerCallbackQuery", "sendPhoto",
        "sendDocument", "setMyCommands", "deleteMyCommands", "getMyCommands", "sendInvoice",
        "createInvoiceLink", "answerPreCheckoutQuery", "refundStarPayment", "close", "logOut", "getFile",
        "setChatMenuButton", "getChatMenuButton",
    }  # fmt: skip
    assert needed <= set(REQUIRED)


def test_checker_reports_missing_unknown_and_mistyped_fields(spec: SpecChecker) -> None:
    good = {"message_id": 1, "date": 1, "chat": {"id": 5, "type": "private"}}
    assert spec.check("Message", good) == []
    assert any("expected Integer" in p for p in spec.check("Message", {**good, "date": None}))
    missing = {"message_id": 1, "chat": {"id": 5, "type": "private"}}
    assert any("'date'" in p for p in spec.check("Message", missing))
    assert any("no field 'form'" in p for p in spec.check("Message", {**good, "form": {}}))
    assert spec.check("Message", {**good, "chat": {"id": "5", "type": "private"}}) != []
    nested = {**good, "reply_markup": {"inline_keyboard": [[{"callback_data": "x"}]]}}
    assert any("'text'" in p for p in spec.check("Message", nested))
    assert spec.check_result("editMessageText", True) == []
    assert spec.check_result("sendMessage", True) != []


@pytest.mark.parametrize("method", sorted(m for m, req in REQUIRED.items() if req))
async def test_a_call_without_its_required_parameters_is_refused(
    emulator: BotAPIEmulator, method: str
) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{emulator.base_url}/bot{TOKEN}/{method}") as resp:
            body = await resp.json()
    assert resp.status == 400
    assert body["ok"] is False and body["error_code"] == 400
    assert body["description"].startswith("Bad Request: ")
