"""One broker object per execution account, made on first use by a factory the composition root gives."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from loguru import logger

from engine.brokers.base import Broker
from engine.store.models import ExecutionAccount

BrokerFactory = Callable[[ExecutionAccount], Awaitable[Broker]]


class BrokerRegistry:
    def __init__(self, factory: BrokerFactory) -> None:
        self._factory = factory
        self._brokers: dict[int, Broker] = {}
        self._locks: dict[int, asyncio.Lock] = {}

    async def get(self, account: ExecutionAccount) -> Broker:
        broker = self._brokers.get(account.id)
        if broker is not None:
            return broker
        lock = self._locks.setdefault(account.id, asyncio.Lock())
        async with lock:
            broker = self._brokers.get(account.id)
            if broker is None:
                broker = await self._factory(account)
                await broker.connect()
                self._brokers[account.id] = broker
        return broker

    def cached(self) -> dict[int, Broker]:
        return dict(self._brokers)

    async def forget(self, account_id: int) -> None:
        """Drop an account's broker (unlinked or credentials changed); closes its session."""
        broker = self._brokers.pop(account_id, None)
        if broker is not None:
            try:
                await broker.close()
            except Exception as exc:
                logger.warning("closing broker of account {} failed: {!r}", account_id, exc)

    async def close(self) -> None:
        for account_id in list(self._brokers):
            await self.forget(account_id)
