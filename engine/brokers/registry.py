"""One broker object per execution account, made on first use by a factory the composition root gives.

An account that needs a lease (MT5: one terminal session across the instances) is opened only
while this instance holds it (``engine.brokers.ownership``): ``get`` takes a free lease, and
refuses with ``NotOwnerError`` when another instance holds it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from loguru import logger

from engine.brokers.base import Broker
from engine.brokers.ownership import Everything, NotOwnerError, Ownership, needs_lease
from engine.store.models import ExecutionAccount

BrokerFactory = Callable[[ExecutionAccount], Awaitable[Broker]]


class BrokerRegistry:
    def __init__(self, factory: BrokerFactory, ownership: Ownership | None = None) -> None:
        self._factory = factory
        self.ownership: Ownership = ownership or Everything()
        self._brokers: dict[int, Broker] = {}
        self._locks: dict[int, asyncio.Lock] = {}

    async def usable(self, account: ExecutionAccount) -> bool:
        """This instance may work on the account now (taking its lease if it is free)."""
        if not needs_lease(account) or self.ownership.holds(account.id):
            return True
        return await self.ownership.take(account)

    async def get(self, account: ExecutionAccount) -> Broker:
        if not await self.usable(account):
            raise NotOwnerError(account.id)
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
