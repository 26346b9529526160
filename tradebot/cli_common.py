"""What every ``tradebot`` command shares: one-line failures and settings (with secrets masked in logs)."""

from __future__ import annotations

from typing import NoReturn

import typer

from engine.settings import Settings, SettingsError, load_settings


def fail(message: str, code: int = 2) -> NoReturn:
    """One clear line on stderr and a non-zero exit status."""
    typer.echo(f"tradebot: {message}", err=True)
    raise typer.Exit(code)


def settings_or_exit(**overrides: object) -> Settings:
    try:
        settings = load_settings(**overrides)
    except SettingsError as exc:
        fail(f"configuration error: {exc}")
    from engine.observability.logs import register_secret, setup_logging

    for secret in (
        settings.bot_token,
        settings.mt5_password,
        settings.outbound_secret,
        settings.secret_key,
        settings.secret_key_old,
        settings.webhook_secret,
        settings.mt5_gateway_token,
        settings.gateway_token,
        *settings.mt5_gateway_tokens.values(),
    ):
        if secret is not None:
            register_secret(secret.get_secret_value())
    setup_logging(settings.log_level, settings.log_json)
    return settings
