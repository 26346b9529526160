"""getUpdates (long polling), setWebhook, deleteWebhook, getWebhookInfo."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from emulator.errors import bad_request, conflict, too_many_requests
from emulator.methods.base import Call, Result, method
from emulator.state import Webhook

_SECRET_RE = re.compile(r"^[A-Za-z0-9_-]*$")


def _allowed_updates(call: Call) -> list[str] | None:
    raw = call.params.json_value("allowed_updates", "allowed updates")
    if raw is None:
        return None
    if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
        raise bad_request("Can't parse allowed updates: expected an Array of String")
    return raw


@method("getUpdates")
async def get_updates(call: Call) -> Any:
    bot, p = call.bot, call.params
    if bot.webhook is not None:
        raise conflict(
            "can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first"
        )
    offset = p.integer("offset", 0) or 0
    limit = min(max(p.integer("limit", 100) or 100, 1), 100)
    timeout = min(max(p.integer("timeout", 0) or 0, 0), call.config.long_poll_max_timeout)
    bot.updates.set_allowed(_allowed_updates(call))
    updates = await bot.updates.get(offset, limit, timeout)
    return [u.json() for u in updates]


@method("setWebhook")
async def set_webhook(call: Call) -> Any:
    bot, p, cfg = call.bot, call.params, call.config
    url = p.string("url") or ""
    parts = urlsplit(url)
    schemes = ("https",) if cfg.webhook_require_https else ("http", "https")
    if parts.scheme not in schemes or not parts.hostname:
        raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
    secret = p.string("secret_token")
    if secret is not None:
        if len(secret) > 256:
            raise bad_request("secret token is too long")
        if not _SECRET_RE.match(secret):
            raise bad_request("secret token contains unallowed characters")
    now = call.core.clock()
    if now - bot.last_set_webhook < cfg.set_webhook_min_interval:
        raise too_many_requests(1, "set_webhook")
    bot.last_set_webhook = now
    max_connections = min(max(p.integer("max_connections", 40) or 40, 1), 100)
    allowed = _allowed_updates(call)
    bot.updates.set_allowed(allowed)
    if p.flag("drop_pending_updates"):
        bot.updates.clear()
    current = bot.webhook
    same = (
        current is not None
        and current.url == url
        and current.secret_token == secret
        and current.max_connections == max_connections
    )
    if same:
        return Result(True, "Webhook is already set")
    call.core.webhooks.set(bot, Webhook(url, secret, max_connections, p.string("ip_address")))
    return Result(True, "Webhook was set")


@method("deleteWebhook")
async def delete_webhook(call: Call) -> Any:
    bot = call.bot
    if call.params.flag("drop_pending_updates"):
        bot.updates.clear()
    if bot.webhook is None:
        return Result(True, "Webhook is already deleted")
    call.core.webhooks.delete(bot)
    return Result(True, "Webhook was deleted")


@method("getWebhookInfo")
async def get_webhook_info(call: Call) -> Any:
    bot = call.bot
    hook = bot.webhook
    info: dict[str, Any] = {
        "url": hook.url if hook else "",
        "has_custom_certificate": False,
        "pending_update_count": len(bot.updates),
    }
    if hook is not None:
        if hook.ip_address:
            info["ip_address"] = hook.ip_address
        if hook.last_error_date is not None:
            info["last_error_date"] = hook.last_error_date
            info["last_error_message"] = hook.last_error_message or ""
        info["max_connections"] = hook.max_connections
        if bot.updates.allowed_explicit is not None:
            info["allowed_updates"] = list(bot.updates.allowed_explicit)
    return info
