"""SECRET_KEY: the key check value, and rotation end to end with the real CLI, producer API and the
simulated MT5 terminal behind the real MT5 broker code."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select
from typer.testing import CliRunner

from engine.api import build_http_app
from engine.ingest.signing import signature_header
from engine.settings import Settings
from engine.store.crypto import SecretBox, key_check_value
from engine.store.db import Database
from engine.store.keycheck import KEY_CHECK, KeyMismatch, rotate_secrets, verify_key
from engine.store.models import EngineState, ExecutionAccount, Producer
from mt5sim import control
from tradebot.app import build_api_context, build_services, secret_box
from tradebot.cli import app

OLD = "old-key-" + "o" * 40
NEW = "new-key-" + "n" * 40
OTHER = "other-key-" + "x" * 40
SERVER = "Sim-Rotate"
runner = CliRunner()


@pytest.fixture
def sim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = tmp_path / "mt5sim.sqlite3"
    monkeypatch.setenv("MT5SIM_STATE", str(path))
    control.create_account(7001, "pw-7001", server=SERVER, balance=4200, state=path)
    yield path
    control.close()


def env(url: str, key: str | None, old: str | None = None) -> dict[str, Any]:
    values: dict[str, Any] = {"DATABASE_URL": url, "LOG_LEVEL": "WARNING", "MT5_MODULE": "mt5sim"}
    values["SECRET_KEY"] = key
    values["SECRET_KEY_OLD"] = old
    return values


def settings(url: str, key: str | None, old: str | None = None) -> Settings:
    return Settings(_env_file=None, database_url=url, secret_key=key, secret_key_old=old, mt5_module="mt5sim")  # type: ignore[call-arg,arg-type]


async def _stored(url: str) -> tuple[str, str, str | None]:
    db = Database(url)
    try:
        async with db.sessions() as session:
            producer = (await session.scalars(select(Producer))).one()
            account = (
                await session.scalars(select(ExecutionAccount).where(ExecutionAccount.kind == "mt5"))
            ).one()
            check = await session.get(EngineState, KEY_CHECK)
        assert account.credentials_enc is not None
        return producer.secret_enc, account.credentials_enc, check.value["hmac"] if check else None
    finally:
        await db.dispose()


async def _works_with(url: str, key: str, old: str | None, producer_id: str, secret: str) -> None:
    """With these keys: the key check passes, the producer's signature is accepted, the MT5 account logs in."""
    config = settings(url, key, old)
    db = Database(url)
    box = secret_box(config)
    try:
        await verify_key(db, box)
        services = build_services(config, db=db)
        ctx = build_api_context(services)
        body = json.dumps(
            {
                "instrument": "EURUSD",
                "side": "buy",
                "order_type": "limit",
                "entry": "1.08",
                "sl": "1.07",
                "tp": "1.1",
            }
        ).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Producer-Id": producer_id,
            "X-Signature": signature_header(secret, body),
        }
        async with TestClient(TestServer(build_http_app(ctx))) as client:
            resp = await client.post("/api/v1/signals", data=body, headers=headers)
            assert resp.status in (200, 201), await resp.text()  # 200: the same signal, already stored
        registry = services.brokers
        try:
            async with db.sessions() as session:
                account = (
                    await session.scalars(select(ExecutionAccount).where(ExecutionAccount.kind == "mt5"))
                ).one()
            broker = await registry.get(account)
            assert (await broker.account()).balance == 4200
        finally:
            await registry.close()
    finally:
        await db.dispose()


def test_rotation_end_to_end(sqlite_url: str, sim: Path) -> None:
    made = runner.invoke(app, ["producer", "add", "rotating"], env=env(sqlite_url, OLD))
    assert made.exit_code == 0, made.output
    producer_id = re.search(r"id:\s+(\S+)", made.output).group(1)  # type: ignore[union-attr]
    secret = re.search(r"secret:\s+(\S+)", made.output).group(1)  # type: ignore[union-attr]
    linked = runner.invoke(
        app,
        [
            "account",
            "add",
            "--telegram-id",
            "5151",
            "--kind",
            "mt5",
            "--login",
            "7001",
            "--server",
            SERVER,
            "--password",
            "pw-7001",
        ],
        env=env(sqlite_url, OLD),
    )
    assert linked.exit_code == 0, linked.output
    producer_enc, account_enc, check = asyncio.run(_stored(sqlite_url))
    assert check == key_check_value(OLD)  # recorded on the first command that needed the key
    assert OLD not in repr((producer_enc, account_enc, check))

    # the new key alone cannot read what the old one wrote: refused before anything changes
    refused = runner.invoke(app, ["secrets", "rotate"], env=env(sqlite_url, NEW))
    assert refused.exit_code == 2 and "SECRET_KEY" in refused.output and refused.output.count("\n") == 1
    refused = runner.invoke(app, ["producer", "add", "another"], env=env(sqlite_url, NEW))
    assert refused.exit_code == 2 and "SECRET_KEY" in refused.output
    assert asyncio.run(_stored(sqlite_url)) == (producer_enc, account_enc, check)

    # during the rotation (new key plus the old one) everything works already
    asyncio.run(_works_with(sqlite_url, NEW, OLD, producer_id, secret))

    rotated = runner.invoke(app, ["secrets", "rotate"], env=env(sqlite_url, NEW, OLD))
    assert rotated.exit_code == 0, rotated.output
    assert "re-encrypted 1 producer secret(s) and 1 account credential(s)" in rotated.output
    after = asyncio.run(_stored(sqlite_url))
    assert after[2] == key_check_value(NEW)
    assert SecretBox(NEW).decrypt(after[0]) == secret and SecretBox(NEW).decrypt(after[1]) == "pw-7001"

    again = runner.invoke(app, ["secrets", "rotate"], env=env(sqlite_url, NEW, OLD))  # idempotent
    assert again.exit_code == 0 and asyncio.run(_stored(sqlite_url))[2] == key_check_value(NEW)
    also = runner.invoke(
        app, ["secrets", "rotate"], env=env(sqlite_url, NEW)
    )  # the old key is no longer needed
    assert also.exit_code == 0, also.output

    asyncio.run(_works_with(sqlite_url, NEW, None, producer_id, secret))  # only the new key
    with pytest.raises(KeyMismatch, match="SECRET_KEY"):
        asyncio.run(_verify(sqlite_url, OLD))
    wrong_pair = runner.invoke(app, ["secrets", "rotate"], env=env(sqlite_url, OTHER, OLD))
    assert wrong_pair.exit_code == 2 and "SECRET_KEY" in wrong_pair.output
    assert asyncio.run(_stored(sqlite_url))[2] == key_check_value(NEW)


async def _verify(url: str, key: str | None) -> None:
    db = Database(url)
    try:
        await verify_key(db, SecretBox(key) if key else None)
    finally:
        await db.dispose()


async def test_key_check_on_both_databases(db: Database) -> None:
    old_box = SecretBox(OLD)
    async with db.session() as session:
        session.add(Producer(name="p", secret_enc=old_box.encrypt("s3cret"), token_digest="d" * 64))
    with pytest.raises(KeyMismatch, match=r"^SECRET_KEY: cannot decrypt"):
        await verify_key(db, SecretBox(OTHER))  # no check value yet: verified against a stored secret
    with pytest.raises(KeyMismatch, match=r"^SECRET_KEY: not set"):
        await verify_key(db, None)
    await verify_key(db, old_box)  # records the check value
    async with db.sessions() as session:
        row = await session.get(EngineState, KEY_CHECK)
        assert row is not None and row.value["hmac"] == key_check_value(OLD)
    with pytest.raises(KeyMismatch, match=r"^SECRET_KEY: not the key"):
        await verify_key(db, SecretBox(OTHER))
    await verify_key(db, SecretBox(NEW, OLD))  # mid-rotation: either key's value is accepted
    done = await rotate_secrets(db, SecretBox(NEW, OLD))
    assert (done.producer_secrets, done.account_credentials) == (1, 0)
    await verify_key(db, SecretBox(NEW))
    with pytest.raises(KeyMismatch):
        await verify_key(db, old_box)


async def test_an_empty_store_records_the_key_it_first_sees(db: Database) -> None:
    await verify_key(db, None)  # nothing stored, no key: fine, nothing recorded
    await verify_key(db, SecretBox(NEW))
    await verify_key(db, SecretBox(NEW))
    with pytest.raises(KeyMismatch):
        await verify_key(db, SecretBox(OTHER))
