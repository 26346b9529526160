"""Mini Apps (Web Apps) as Telegram's clients open them: the menu button, ``web_app`` buttons, and
the signed launch parameters (``initData``) a user's client hands to the page.

Telegram signs ``initData`` with a key only it and the bot can derive from the bot token
(core.telegram.org/bots/webapps#validating-data-received-via-the-mini-app): data-check string =
the ``key=value`` pairs except ``hash``, sorted, joined by ``\\n``; secret = HMAC-SHA256(key
``"WebAppData"``, message bot token); ``hash`` = hex HMAC-SHA256(secret, data-check string). The
emulator knows each bot's token, so it signs exactly so. The Ed25519 ``signature`` field (for
third parties, signed with Telegram's private key) is not produced.

The launch URL is the Web App's URL with the parameters in its fragment, as Telegram's web client
passes them: ``#tgWebAppData=...&tgWebAppVersion=...&tgWebAppPlatform=...&tgWebAppThemeParams=...``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from typing import Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from emulator.errors import ControlError, bad_request
from emulator.state import BotState, User

WEB_APP_VERSION = "9.1"
PLATFORM = "web"
MENU_TYPES = ("commands", "web_app", "default")
MAX_MENU_TEXT = 64

# Telegram Web's own palettes (the keys of ThemeParams)
THEMES: dict[str, dict[str, str]] = {
    "light": {
        "bg_color": "#ffffff",
        "text_color": "#000000",
        "hint_color": "#707579",
        "link_color": "#3390ec",
        "button_color": "#3390ec",
        "button_text_color": "#ffffff",
        "secondary_bg_color": "#f4f4f5",
        "header_bg_color": "#ffffff",
        "accent_text_color": "#3390ec",
        "section_bg_color": "#ffffff",
        "section_header_text_color": "#3390ec",
        "subtitle_text_color": "#707579",
        "destructive_text_color": "#e53935",
    },
    "dark": {
        "bg_color": "#212121",
        "text_color": "#ffffff",
        "hint_color": "#aaaaaa",
        "link_color": "#8774e1",
        "button_color": "#8774e1",
        "button_text_color": "#ffffff",
        "secondary_bg_color": "#0f0f0f",
        "header_bg_color": "#212121",
        "accent_text_color": "#8774e1",
        "section_bg_color": "#212121",
        "section_header_text_color": "#8774e1",
        "subtitle_text_color": "#aaaaaa",
        "destructive_text_color": "#ff595a",
    },
}


def check_web_app_url(value: Any, *, require_https: bool, where: str) -> str:
    """A ``WebAppInfo.url`` as Telegram checks it (HTTPS; plain HTTP allowed unless ``require_https``)."""
    url = value.get("url") if isinstance(value, dict) else None
    if not isinstance(url, str) or not url:
        raise bad_request(f"{where}: Web App URL is empty")
    parts = urlsplit(url)
    allowed = ("https",) if require_https else ("https", "http")
    if parts.scheme not in allowed or not parts.hostname:
        raise bad_request(f"{where} Web App URL '{url}' is invalid: Only HTTPS links are allowed")
    return url


def parse_menu_button(raw: Any, *, require_https: bool) -> dict[str, Any]:
    """A ``MenuButton`` (``commands``, ``web_app`` or ``default``) as the bot sent it."""
    if raw in (None, ""):
        return {"type": "default"}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise bad_request("can't parse menu button JSON object") from None
    if not isinstance(raw, dict) or raw.get("type") not in MENU_TYPES:
        raise bad_request("can't parse menu button: unsupported type specified")
    if raw["type"] != "web_app":
        return {"type": raw["type"]}
    text = raw.get("text")
    if not isinstance(text, str) or not text.strip():
        raise bad_request("can't parse menu button: text is empty")
    if len(text) > MAX_MENU_TEXT:
        raise bad_request("can't parse menu button: text is too long")
    url = check_web_app_url(raw.get("web_app"), require_https=require_https, where="menu button")
    return {"type": "web_app", "text": text, "web_app": {"url": url}}


def init_data_user(user: User) -> dict[str, Any]:
    out: dict[str, Any] = {"id": user.id, "first_name": user.first_name}
    if user.last_name:
        out["last_name"] = user.last_name
    if user.username:
        out["username"] = user.username
    if user.language_code:
        out["language_code"] = user.language_code
    if user.is_premium:
        out["is_premium"] = True
    out["allows_write_to_pm"] = True
    return out


def sign_init_data(fields: dict[str, str], token: str) -> str:
    check = "\n".join(f"{key}={fields[key]}" for key in sorted(fields))
    secret = hmac.new(b"WebAppData", token.encode(), hashlib.sha256).digest()
    digest = hmac.new(secret, check.encode(), hashlib.sha256).hexdigest()
    return urlencode({**fields, "hash": digest}, quote_via=quote)


def bot_token(bot: BotState) -> str:
    if not bot.secret:
        raise ControlError(409, "the bot has not called the Bot API yet, so its token is unknown")
    return f"{bot.id}:{bot.secret}"


def launch(
    bot: BotState, user: User, url: str, *, auth_date: int, theme: str, query_id: bool = True
) -> dict[str, Any]:
    """What the user's client opens: the signed ``initData`` and the launch URL carrying it."""
    if theme not in THEMES:
        raise ControlError(400, f"theme must be one of {', '.join(THEMES)}")
    fields: dict[str, str] = {
        "user": json.dumps(init_data_user(user), separators=(",", ":"), ensure_ascii=False),
        "auth_date": str(auth_date),
    }
    if query_id:  # inline and menu buttons can answer with answerWebAppQuery
        fields["query_id"] = "AA" + secrets.token_urlsafe(24)
    init_data = sign_init_data(fields, bot_token(bot))
    params = {
        "tgWebAppData": init_data,
        "tgWebAppVersion": WEB_APP_VERSION,
        "tgWebAppPlatform": PLATFORM,
        "tgWebAppThemeParams": json.dumps(THEMES[theme], separators=(",", ":")),
    }
    fragment = "&".join(f"{key}={quote(value, safe='')}" for key, value in params.items())
    parts = urlsplit(url)
    return {
        "url": urlunsplit((parts.scheme, parts.netloc, parts.path, parts.query, fragment)),
        "web_app_url": url,
        "init_data": init_data,
        "init_data_unsafe": {**fields, "user": init_data_user(user)},
        "theme_params": dict(THEMES[theme]),
        "version": WEB_APP_VERSION,
        "platform": PLATFORM,
    }


def web_app_buttons(markup: dict[str, Any] | None) -> list[dict[str, Any]]:
    return [b for row in (markup or {}).get("inline_keyboard", []) for b in row if "web_app" in b]
