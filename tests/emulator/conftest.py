"""Fixtures: an emulator on a free loopback port, the real aiogram Bot pointed at it, a control client.

Every answer the emulator gives (and every update it delivers by webhook) during a test is walked
against the Bot API spec file; a test fails if any object lacks a required field, carries an
unknown one, or has a wrongly typed value.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from aiogram import Bot

from emulator import BotAPIEmulator
from emulator.spec import SpecChecker
from tests.support.emulator_world import (
    SPEC_PATH,
    CheckedClient,
    EmulatorFactory,
    exchange_problems,
    make_bot,
)
from tests.support.telegram import LOOSE_EMULATOR


@pytest.fixture(scope="session")
def spec() -> SpecChecker:
    if not SPEC_PATH.is_file():
        pytest.fail(f"Bot API spec not found at {SPEC_PATH}; set TELEGRAM_BOT_API_SPEC", pytrace=False)
    return SpecChecker.load(SPEC_PATH)


@pytest.fixture
async def make_emulator(spec: SpecChecker) -> AsyncIterator[EmulatorFactory]:
    """Start emulators (TEST_CONFIG with overrides); their answers are checked against the spec."""
    started: list[BotAPIEmulator] = []
    problems: list[str] = []

    async def make(**overrides: Any) -> BotAPIEmulator:
        emulator = BotAPIEmulator(replace(LOOSE_EMULATOR, **overrides))
        emulator.add_listener(lambda exchange: problems.extend(exchange_problems(spec, exchange)))
        await emulator.start("127.0.0.1", 0)
        started.append(emulator)
        return emulator

    yield make
    for emulator in started:
        await emulator.stop()
    assert problems == [], "answers that do not match the Bot API spec:\n" + "\n".join(problems)


@pytest.fixture
async def emulator(make_emulator: EmulatorFactory) -> BotAPIEmulator:
    return await make_emulator()


@pytest.fixture
async def bot(emulator: BotAPIEmulator) -> AsyncIterator[Bot]:
    instance = make_bot(emulator.base_url, parse_mode="HTML")
    yield instance
    await instance.session.close()


@pytest.fixture
async def ctl(emulator: BotAPIEmulator, spec: SpecChecker) -> AsyncIterator[CheckedClient]:
    client = CheckedClient(emulator.base_url, spec)
    yield client
    await client.close()


@pytest.fixture
async def alice(ctl: CheckedClient, bot: Bot) -> int:
    """User 1001 with a private chat the bot may write to (the bot is known after getMe)."""
    await bot.get_me()
    await ctl.add_user(1001, "Alice", "alice", "en")
    return 1001
