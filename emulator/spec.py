"""The Bot API methods the emulator answers, with their required parameters, and a checker that walks
JSON against the Bot API spec file (``telegram-bot-api.json``: ``methods`` and ``types``).

The required parameters here are what the emulator enforces at run time; the test suite checks
them against the spec file so the two cannot drift apart.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emulator.errors import ApiError, bad_request

REQUIRED: dict[str, tuple[str, ...]] = {
    "getMe": (),
    "logOut": (),
    "close": (),
    "getUpdates": (),
    "setWebhook": ("url",),
    "deleteWebhook": (),
    "getWebhookInfo": (),
    "sendMessage": ("chat_id", "text"),
    "sendPhoto": ("chat_id", "photo"),
    "sendDocument": ("chat_id", "document"),
    "sendChatAction": ("chat_id", "action"),
    "editMessageText": (),
    "editMessageCaption": (),
    "editMessageReplyMarkup": (),
    "deleteMessage": ("chat_id", "message_id"),
    "answerCallbackQuery": ("callback_query_id",),
    "getFile": ("file_id",),
    "getChat": ("chat_id",),
    "setMyCommands": ("commands",),
    "deleteMyCommands": (),
    "getMyCommands": (),
    "setChatMenuButton": (),
    "getChatMenuButton": (),
    "sendInvoice": ("chat_id", "title", "description", "payload", "currency", "prices"),
    "createInvoiceLink": ("title", "description", "payload", "currency", "prices"),
    "answerPreCheckoutQuery": ("pre_checkout_query_id", "ok"),
    "refundStarPayment": ("user_id", "telegram_payment_charge_id"),
    "editUserStarSubscription": ("user_id", "telegram_payment_charge_id", "is_canceled"),
}
CANONICAL = {name.lower(): name for name in REQUIRED}

# Telegram's own words for some missing parameters; the rest get 'parameter "x" is required'.
_MISSING = {
    "chat_id": "chat_id is empty",
    "text": "Message text is empty",
    "photo": "There is no photo in the request",
    "document": "There is no document in the request",
    "message_id": "Message identifier is not specified",
    "action": "Wrong parameter action in request",
    "file_id": "file_id not specified",
    "prices": "There must be at least one price",
}


def check_required(method: str, present: Any) -> None:
    """Raise 400 for the first required parameter of ``method`` that ``present(name)`` denies."""
    for name in REQUIRED.get(method, ()):
        if not present(name):
            raise bad_request(_MISSING.get(name, f'Parameter "{name}" is required'))


def missing(name: str) -> ApiError:
    return bad_request(_MISSING.get(name, f'Parameter "{name}" is required'))


# -- checking JSON against the spec file ---------------------------------------------------------
_SCALARS = {"Integer", "Float", "String", "Boolean", "True", "InputFile"}


@dataclass
class SpecChecker:
    """Walk values against the spec's ``types``: required fields present, no unknown fields, types right."""

    spec: dict[str, Any]

    @classmethod
    def load(cls, path: str | Path) -> SpecChecker:
        return cls(json.loads(Path(path).read_text(encoding="utf-8")))

    def check_result(self, method: str, result: Any) -> list[str]:
        returns = self.spec["methods"][method]["returns"]
        return self._any(returns, result, f"{method}()")

    def check(self, type_expr: str, value: Any, where: str = "") -> list[str]:
        return self._one(type_expr, value, where or type_expr)

    def _any(self, exprs: list[str], value: Any, where: str) -> list[str]:
        best: list[str] | None = None
        for expr in exprs:
            errors = self._one(expr, value, where)
            if not errors:
                return []
            if best is None or len(errors) < len(best):
                best = errors
        return best or [f"{where}: no type given"]

    def _one(self, expr: str, value: Any, where: str) -> list[str]:
        if expr.startswith("Array of "):
            if not isinstance(value, list):
                return [f"{where}: expected {expr}, got {type(value).__name__}"]
            inner = expr[len("Array of ") :]
            errors: list[str] = []
            for index, item in enumerate(value):
                errors += self._one(inner, item, f"{where}[{index}]")
            return errors
        if expr in _SCALARS:
            return self._scalar(expr, value, where)
        spec_type = self.spec["types"].get(expr)
        if spec_type is None:
            return [f"{where}: unknown type {expr}"]
        if spec_type.get("subtypes"):
            return self._any(spec_type["subtypes"], value, where)
        if not isinstance(value, dict):
            return [f"{where}: expected {expr} object, got {type(value).__name__}"]
        fields = {f["name"]: f for f in spec_type.get("fields", [])}
        errors = []
        for name, field in fields.items():
            if field["required"] and name not in value:
                errors.append(f"{where}: {expr} lacks required field {name!r}")
        for name, item in value.items():
            if name not in fields:
                errors.append(f"{where}: {expr} has no field {name!r}")
                continue
            errors += self._any(fields[name]["types"], item, f"{where}.{name}")
        return errors

    @staticmethod
    def _scalar(expr: str, value: Any, where: str) -> list[str]:
        ok = {
            "Integer": isinstance(value, int) and not isinstance(value, bool),
            "Float": isinstance(value, int | float) and not isinstance(value, bool),
            "String": isinstance(value, str),
            "Boolean": isinstance(value, bool),
            "True": value is True,
            "InputFile": True,
        }[expr]
        return [] if ok else [f"{where}: expected {expr}, got {value!r}"]
