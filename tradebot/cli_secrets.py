"""``tradebot secrets rotate`` and the SECRET_KEY check every command that decrypts runs first."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import NoReturn

import typer

from engine.settings import Settings

secrets_app = typer.Typer(help="Stored secrets (SECRET_KEY).", no_args_is_help=True)


def _fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"tradebot: {message}", err=True)
    raise typer.Exit(code)


def require_matching_key(settings: Settings) -> None:
    """Exit 2 with one line naming SECRET_KEY unless it is the key of the stored secrets.

    Runs on the database as it is (before migrations, so nothing else is printed); a database
    that was never migrated holds no secrets and passes.
    """
    from engine.store.db import Database
    from engine.store.keycheck import KeyMismatch, verify_key_if_migrated
    from tradebot.app import secret_box

    if _absent_sqlite_file(settings.database_url):
        return  # nothing stored yet, and opening it would create the file

    async def check() -> None:
        db = Database(settings.database_url)
        try:
            await verify_key_if_migrated(db, secret_box(settings))
        finally:
            await db.dispose()

    try:
        asyncio.run(check())
    except KeyMismatch as exc:
        _fail(str(exc))


def _absent_sqlite_file(url: str) -> bool:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if not parsed.get_backend_name().startswith("sqlite"):
        return False
    name = parsed.database or ""
    return name not in ("", ":memory:") and not Path(name).exists()


@secrets_app.command("rotate")
def rotate() -> None:
    """Re-encrypt every stored secret under SECRET_KEY (decrypting with it or SECRET_KEY_OLD)."""
    from tradebot.cli_common import settings_or_exit

    settings = settings_or_exit()
    if settings.secret_key is None:
        _fail("configuration error: SECRET_KEY: required to rotate stored secrets")
    from engine.store.db import Database
    from engine.store.keycheck import KeyMismatch, rotate_secrets
    from engine.store.migrate import upgrade
    from tradebot.app import secret_box

    try:
        upgrade(settings.database_url)
    except Exception as exc:
        _fail(f"migration failed: {exc}", code=1)
    box = secret_box(settings)
    assert box is not None

    async def main() -> tuple[int, int]:
        db = Database(settings.database_url)
        try:
            done = await rotate_secrets(db, box)
        finally:
            await db.dispose()
        return done.producer_secrets, done.account_credentials

    try:
        producers, accounts = asyncio.run(main())
    except KeyMismatch as exc:
        _fail(str(exc))
    typer.echo(
        f"re-encrypted {producers} producer secret(s) and {accounts} account credential(s) under SECRET_KEY; "
        "SECRET_KEY_OLD is no longer needed"
    )


def register(app: typer.Typer) -> None:
    app.add_typer(secrets_app, name="secrets")
