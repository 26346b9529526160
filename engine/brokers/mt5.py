"""The MetaTrader 5 broker: one execution account on a terminal reached through a MetaTrader5-compatible module.

The module is named by a string (``MT5_MODULE``: ``MetaTrader5``, ``package.module`` or
``package.module:attribute``) and imported only when a broker is created, never when engine
modules are imported.

Threading: every call for one account runs on that account's single worker thread (see
``engine.brokers.mt5_process``) and is awaited from the event loop, so ``order_send`` is never
entered concurrently for one terminal, and one account's slow or dead terminal never delays
another account's calls.

One session per account: the real ``MetaTrader5`` package drives one terminal per process, so
``create_mt5_broker`` runs each account in its own child process unless the module declares
``MULTI_ACCOUNT = True`` (the project's simulated terminal ``mt5sim`` does: its sessions are per
thread), in which case the account gets a worker thread in this process. ``isolation="process"``
forces the child process for any module.

Outcomes of ``submit``/``close_position``/``cancel_order``: ACCEPTED (DONE, PLACED, DONE_PARTIAL
with the filled volume), RETRY (REQUOTE, PRICE_CHANGED, PRICE_OFF, REJECT: nothing executed,
re-price and resend), REFUSED (invalid volume/price/stops/fill/expiration, no money, market
closed, trade disabled, too many requests, limits...: with a readable reason), UNKNOWN (TIMEOUT,
CONNECTION, ERROR, ``None`` or an exception from ``order_send``, no answer in time): look the
order up with ``find_by_client_id`` before anything else. Rules for ids: ``mt5_convert``.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal, Protocol

from loguru import logger

from engine.brokers.base import (
    AccountSnapshot,
    Broker,
    BrokerError,
    BrokerHealth,
    BrokerOrder,
    BrokerPosition,
    Deal,
    FoundOrder,
    OrderRequest,
    SubmitResult,
    SubmitStatus,
    SymbolSpec,
    Tick,
)
from engine.brokers.mt5_convert import DEFAULT_MAGIC, MAX_CLIENT_ID_LEN, check_client_id
from engine.brokers.mt5_link import MT5Config, load_module
from engine.brokers.mt5_process import CallTimeout, ProcessRunner, ThreadRunner

__all__ = [
    "DEFAULT_MAGIC",
    "MAX_CLIENT_ID_LEN",
    "CallTimeout",
    "MT5Broker",
    "MT5Config",
    "check_client_id",
    "create_mt5_broker",
    "load_module",
]

Isolation = Literal["auto", "thread", "process"]


class Runner(Protocol):
    async def call(self, method: str, args: tuple[Any, ...], seconds: float) -> Any: ...

    async def close(self) -> None: ...


class MT5Broker(Broker):
    """``engine.brokers.base.Broker`` for one MT5 account."""

    def __init__(
        self,
        runner: Runner,
        config: MT5Config,
        *,
        call_timeout: float = 30.0,
        send_timeout: float = 60.0,
        connect_timeout: float = 180.0,
    ) -> None:
        self._runner = runner
        self.config = config
        self.isolation = "process" if isinstance(runner, ProcessRunner) else "thread"
        self._call_timeout = call_timeout
        self._send_timeout = send_timeout
        self._connect_timeout = connect_timeout

    @property
    def runner(self) -> Runner:
        return self._runner

    async def _call(self, method: str, *args: Any, seconds: float | None = None) -> Any:
        return await self._runner.call(method, args, self._call_timeout if seconds is None else seconds)

    async def _trade(self, method: str, *args: Any) -> SubmitResult:
        try:
            result: SubmitResult = await self._call(method, *args, seconds=self._send_timeout)
        except BrokerError as exc:
            return SubmitResult(SubmitStatus.UNKNOWN, None, f"{method}: {exc}")
        return result

    async def connect(self) -> None:
        await self._call("connect", seconds=self._connect_timeout)

    async def health(self) -> BrokerHealth:
        try:
            health: BrokerHealth = await self._call("health")
        except BrokerError as exc:
            return BrokerHealth(False, str(exc))
        return health

    async def account(self) -> AccountSnapshot:
        snapshot: AccountSnapshot = await self._call("account")
        return snapshot

    async def symbol_spec(self, symbol: str) -> SymbolSpec | None:
        spec: SymbolSpec | None = await self._call("symbol_spec", symbol)
        return spec

    async def tick(self, symbol: str) -> Tick:
        tick: Tick = await self._call("tick", symbol)
        return tick

    async def submit(self, request: OrderRequest) -> SubmitResult:
        problem = check_client_id(request.client_order_id)
        if problem is not None:
            return SubmitResult(SubmitStatus.REFUSED, None, problem)
        return await self._trade("submit", request)

    async def find_by_client_id(self, client_order_id: str) -> FoundOrder | None:
        found: FoundOrder | None = await self._call("find_by_client_id", client_order_id)
        return found

    async def positions(self) -> list[BrokerPosition]:
        positions: list[BrokerPosition] = await self._call("positions")
        return positions

    async def pending_orders(self) -> list[BrokerOrder]:
        orders: list[BrokerOrder] = await self._call("pending_orders")
        return orders

    async def cancel_order(self, ticket: str) -> SubmitResult:
        return await self._trade("cancel_order", ticket)

    async def close_position(self, ticket: str, client_order_id: str) -> SubmitResult:
        problem = check_client_id(client_order_id)
        if problem is not None:
            return SubmitResult(SubmitStatus.REFUSED, None, problem)
        return await self._trade("close_position", ticket, client_order_id)

    async def modify_position(self, ticket: str, sl: Decimal | None, tp: Decimal | None) -> SubmitResult:
        return await self._trade("modify_position", ticket, sl, tp)

    async def close_partial(self, ticket: str, volume: Decimal, client_order_id: str) -> SubmitResult:
        problem = check_client_id(client_order_id)
        if problem is not None:
            return SubmitResult(SubmitStatus.REFUSED, None, problem)
        return await self._trade("close_partial", ticket, volume, client_order_id)

    async def position_deals(self, ticket: str) -> list[Deal]:
        deals: list[Deal] = await self._call("position_deals", ticket)
        return deals

    async def deals(self, since: datetime, until: datetime) -> list[Deal]:
        deals: list[Deal] = await self._call("deals", since, until)
        return deals

    async def close(self) -> None:
        """Log out and stop the worker (a hung terminal is abandoned after a short wait)."""
        try:
            await self._runner.close()
        except BrokerError as exc:
            logger.warning("closing MT5 account {} was not clean: {}", self.config.login, exc)


def create_mt5_broker(
    module_name: str = "MetaTrader5",
    login: int = 0,
    password: str = "",
    server: str = "",
    path: str | None = None,
    magic: int = DEFAULT_MAGIC,
    *,
    isolation: Isolation = "auto",
    call_timeout: float = 30.0,
    send_timeout: float = 60.0,
    connect_timeout: float = 180.0,
    **session_options: Any,
) -> MT5Broker:
    """An (unconnected) broker for one account; ``session_options`` are ``MT5Config`` fields.

    ``isolation``: ``auto`` picks a worker thread in this process when the module declares
    ``MULTI_ACCOUNT = True`` and a dedicated child process otherwise; ``thread``/``process`` force one.
    """
    config = MT5Config(
        module=module_name, login=int(login), password=password, server=server, path=path, magic=magic,
        **session_options,
    )  # fmt: skip
    if isolation == "auto":
        try:
            module = load_module(module_name)
        except (ImportError, AttributeError) as exc:
            raise BrokerError(f"cannot load the MT5 module {module_name!r}: {exc}") from exc
        isolation = "thread" if getattr(module, "MULTI_ACCOUNT", False) is True else "process"
    runner: Runner = ThreadRunner(config) if isolation == "thread" else ProcessRunner(config)
    return MT5Broker(
        runner, config, call_timeout=call_timeout, send_timeout=send_timeout, connect_timeout=connect_timeout
    )
