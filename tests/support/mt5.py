"""The simulated MT5 terminal's accounts, and orders as the MT5 broker sends them."""

from __future__ import annotations

from decimal import Decimal

from engine.brokers.base import FillingMode, OrderRequest, OrderType, Side
from mt5sim import control

LOGIN = 5001
PASSWORD = "pw-5001"
SERVER = "MT5Sim-Demo"
OTHER_LOGIN = 5002
OTHER_PASSWORD = "pw-5002"


def pin(symbol: str, bid: str, ask: str) -> None:
    """Hold a symbol's price where a test wants it."""
    control.set_price(symbol, Decimal(bid), Decimal(ask))


def order(
    cid: str,
    side: Side = Side.BUY,
    *,
    symbol: str = "EURUSD",
    volume: str = "0.10",
    price: str = "1.10008",
    sl: str = "1.09500",
    tp: str = "1.10500",
    order_type: OrderType = OrderType.MARKET,
    filling: FillingMode = FillingMode.IOC,
    **kw: object,
) -> OrderRequest:
    return OrderRequest(
        client_order_id=cid,
        symbol=symbol,
        side=side,
        order_type=order_type,
        volume=Decimal(volume),
        price=Decimal(price),
        sl=Decimal(sl),
        tp=Decimal(tp),
        filling=filling,
        **kw,  # type: ignore[arg-type]
    )
