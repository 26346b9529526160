"""A wrong SECRET_KEY does not start: the real ``tradebot run`` exits 2 with one line naming it,
before the bot, the HTTP server or the loop start."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select

from engine.ingest.producers import ProducerService
from engine.store.crypto import SecretBox
from engine.store.db import Database
from engine.store.keycheck import KEY_CHECK, verify_key
from engine.store.migrate import upgrade
from engine.store.models import DomainEvent, EngineState

ROOT = Path(__file__).resolve().parents[2]
RIGHT = "right-key-" + "r" * 40
WRONG = "wrong-key-" + "w" * 40


def _run(tmp_path: Path, url: str, key: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SECRET_KEY", "DATABASE_URL"))}
    env.update(
        DATABASE_URL=url,
        BOT_TOKEN="123456:not-a-real-token",
        LOG_LEVEL="INFO",  # the default: an operator sees exactly this
        PYTHONPATH=str(ROOT),
    )
    if key is not None:
        env["SECRET_KEY"] = key
    return subprocess.run(
        [sys.executable, "-m", "tradebot.cli", "run"],
        cwd=tmp_path,  # no .env here
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def _seed(url: str) -> None:
    db = Database(url)
    try:
        await ProducerService(db, SecretBox(RIGHT)).add("stored-under-the-right-key")
    finally:
        await db.dispose()


async def _nothing_started(url: str) -> bool:
    db = Database(url)
    try:
        async with db.sessions() as session:
            events = await session.scalar(select(func.count()).select_from(DomainEvent))
            state = set((await session.scalars(select(EngineState.key))).all())
        # no engine.started event, no heartbeat, no loop lease: only the key check value
        return events == 0 and state == {KEY_CHECK}
    finally:
        await db.dispose()


def _assert_refused(done: subprocess.CompletedProcess[str], expected: str) -> None:
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"tradebot: SECRET_KEY: {expected}"), lines[0]
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert RIGHT not in done.stderr and WRONG not in done.stderr


def test_wrong_secret_key_exits_2_with_one_line_before_anything_starts(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'tradebot.db'}"
    upgrade(url)
    asyncio.run(_seed(url))

    # no check value yet: the key is tried on a stored secret
    _assert_refused(_run(tmp_path, url, WRONG), "cannot decrypt the stored secrets")
    # with the check value recorded (any start with the right key does it)
    asyncio.run(_seed_check(url))
    _assert_refused(_run(tmp_path, url, WRONG), "not the key the stored secrets were encrypted with")
    _assert_refused(_run(tmp_path, url, None), "not set")
    assert asyncio.run(_nothing_started(url))


async def _seed_check(url: str) -> None:
    db = Database(url)
    try:
        await verify_key(db, SecretBox(RIGHT))
    finally:
        await db.dispose()
