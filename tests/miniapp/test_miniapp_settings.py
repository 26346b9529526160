"""MINIAPP_* settings: where Telegram opens the Mini App, and the limits of its sessions."""

from __future__ import annotations

from typing import Any

import pytest

from engine.settings import MiniAppScript, SettingsError, load_settings


def settings(**values: Any) -> Any:
    return load_settings(_env_file=None, **values)


def test_the_mini_app_url_is_https_or_loopback_http() -> None:
    assert (
        settings(miniapp_url="https://bot.example.org/app").miniapp_public_url()
        == "https://bot.example.org/app/"
    )
    assert settings(miniapp_url="http://127.0.0.1:8080/app/").miniapp_url == "http://127.0.0.1:8080/app/"
    for bad in ("http://bot.example.org/app/", "ftp://x/app/", "https:///app/", "https://x/app/?a=1"):
        with pytest.raises(SettingsError, match=r"^MINIAPP_URL: "):
            settings(miniapp_url=bad)


def test_without_one_the_url_follows_an_https_webhook() -> None:
    hooked = settings(telegram_mode="webhook", webhook_url="https://bot.example.org:8443/telegram/hook")
    assert hooked.miniapp_public_url() == "https://bot.example.org:8443/app/"
    assert settings(webhook_url="http://127.0.0.1:8080/telegram/webhook").miniapp_public_url() is None
    assert settings().miniapp_public_url() is None


def test_session_limits_and_the_script_have_defaults_and_bounds() -> None:
    default = settings()
    assert default.miniapp_max_age_seconds == 86400 and default.miniapp_session_seconds == 3600
    assert default.miniapp_script is MiniAppScript.TELEGRAM
    assert settings(miniapp_script="local").miniapp_script is MiniAppScript.LOCAL
    for name, value in (("miniapp_max_age_seconds", 10), ("miniapp_session_seconds", 100000)):
        with pytest.raises(SettingsError, match=rf"^{name.upper()}: "):
            settings(**{name: value})
    with pytest.raises(SettingsError, match=r"^MINIAPP_SCRIPT: "):
        settings(miniapp_script="cdn")
