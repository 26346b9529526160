"""The edge between the MetaTrader5 module (floats, ints, named tuples) and the broker types.

Floats from the module become ``Decimal`` via ``str(round(x, digits))`` so 1.10005 stays
1.10005; ``Decimal`` becomes ``float`` only when a request dict is built. Constants are looked
up on the module with a numeric fallback (version drift between package releases).

Client order ids travel in the MT5 ``comment``. The documented limit is 31 characters, but real
terminals have been seen refusing comments of 28+ characters with ``(-2, 'Invalid "comment"
argument')``, so ids are limited to ``MAX_CLIENT_ID_LEN`` = 27 characters from
``[A-Za-z0-9_.:-]`` (starting with a letter or digit). The engine's ids look like
``tb-<22 chars>`` (25 characters).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from engine.brokers.base import (
    BrokerOrder,
    BrokerPosition,
    Deal,
    FillingMode,
    OrderRequest,
    OrderType,
    Side,
    SubmitResult,
    SubmitStatus,
    SymbolSpec,
)

DEFAULT_MAGIC = 20260501
MAX_CLIENT_ID_LEN = 27
_CLIENT_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]*")

FALLBACKS: dict[str, int] = {
    "TRADE_ACTION_DEAL": 1, "TRADE_ACTION_PENDING": 5, "TRADE_ACTION_SLTP": 6, "TRADE_ACTION_MODIFY": 7,
    "TRADE_ACTION_REMOVE": 8, "ORDER_TYPE_BUY": 0, "ORDER_TYPE_SELL": 1, "ORDER_TYPE_BUY_LIMIT": 2,
    "ORDER_TYPE_SELL_LIMIT": 3, "ORDER_TYPE_BUY_STOP": 4, "ORDER_TYPE_SELL_STOP": 5,
    "ORDER_TYPE_BUY_STOP_LIMIT": 6, "ORDER_TYPE_SELL_STOP_LIMIT": 7, "ORDER_FILLING_FOK": 0,
    "ORDER_FILLING_IOC": 1, "ORDER_FILLING_RETURN": 2, "ORDER_TIME_GTC": 0, "ORDER_TIME_SPECIFIED": 2,
    "POSITION_TYPE_BUY": 0, "POSITION_TYPE_SELL": 1, "DEAL_TYPE_BUY": 0, "DEAL_TYPE_SELL": 1,
    "ORDER_STATE_STARTED": 0, "ORDER_STATE_PLACED": 1, "ORDER_STATE_CANCELED": 2, "ORDER_STATE_PARTIAL": 3,
    "ORDER_STATE_FILLED": 4, "ORDER_STATE_REJECTED": 5, "ORDER_STATE_EXPIRED": 6,
    "SYMBOL_TRADE_MODE_DISABLED": 0, "SYMBOL_TRADE_MODE_CLOSEONLY": 3, "SYMBOL_TRADE_EXECUTION_EXCHANGE": 3,
}  # fmt: skip

ACCEPTED_CODES = {10008: "placed", 10009: "done", 10010: "partially filled"}
RETRY_CODES = {
    10004: "requote",
    10006: "rejected by the trade server",
    10020: "prices changed",
    10021: "no quotes to process the request",
}
UNKNOWN_CODES = {
    10011: "request processing error",
    10012: "request timed out",
    10023: "order state changed",
    10028: "request locked for processing",
    10031: "no connection with the trade server",
}
REFUSED_CODES = {
    10007: "request canceled",
    10013: "invalid request",
    10014: "invalid volume",
    10015: "invalid price",
    10016: "invalid stops (SL/TP too close or on the wrong side)",
    10017: "trading is disabled",
    10018: "market is closed",
    10019: "not enough money",
    10022: "invalid expiration",
    10024: "too many requests",
    10025: "no changes",
    10026: "autotrading disabled by the server",
    10027: "autotrading disabled in the terminal",
    10029: "order or position frozen (too close to the market)",
    10030: "filling mode not supported by the symbol",
    10032: "only allowed on live accounts",
    10033: "pending orders limit reached",
    10034: "volume limit reached",
    10035: "invalid or prohibited order type",
    10036: "position already closed",
    10038: "close volume exceeds the position",
    10039: "a close order already exists for the position",
    10040: "positions limit reached",
    10041: "pending order activation rejected",
    10042: "only long positions allowed",
    10043: "only short positions allowed",
    10044: "only closing positions allowed",
    10045: "FIFO close rule",
    10046: "hedging prohibited",
}
IPC_ERRORS = range(-10005, -9999)  # -10000 .. -10005: the terminal link itself failed
RES_S_OK = 1
MARGIN_MODE_HEDGING = 2  # account_info().margin_mode: 0 netting, 1 exchange, 2 hedging
RES_E_INVALID_PARAMS = -2
RES_E_AUTH_FAILED = -6

_DEAL_REASONS = {0: "client", 1: "mobile", 2: "web", 3: "expert", 4: "sl", 5: "tp", 6: "so", 7: "rollover"}
_DEAL_ENTRIES = {0: "in", 1: "out", 2: "inout", 3: "out_by"}


class K:
    """The module's constants, with numeric fallbacks."""

    def __init__(self, module: Any) -> None:
        self._module = module

    def __getattr__(self, name: str) -> int:
        value = getattr(self._module, name, None)
        if value is None:
            if name not in FALLBACKS:
                raise AttributeError(name)
            value = FALLBACKS[name]
        return int(value)


def check_client_id(client_order_id: str) -> str | None:
    """Why an id cannot travel in the MT5 comment, or None when it can."""
    if len(client_order_id) > MAX_CLIENT_ID_LEN:
        return f"client order id {client_order_id!r} is longer than {MAX_CLIENT_ID_LEN} characters"
    if not _CLIENT_ID_RE.fullmatch(client_order_id):
        return f"client order id {client_order_id!r} has characters outside [A-Za-z0-9_.:-]"
    return None


def client_id_of(comment: str, record_magic: int, magic: int) -> str | None:
    """The client order id a record carries: its comment, when it is ours (our magic, id-shaped)."""
    if record_magic != magic or not comment or check_client_id(comment) is not None:
        return None
    return comment


# ---- numbers and times -----------------------------------------------------------------------


def dec(value: float, digits: int) -> Decimal:
    """A float from the module as the exact decimal it stands for, with ``digits`` places."""
    return Decimal(str(round(float(value), digits))).quantize(Decimal(1).scaleb(-digits))


def plain(value: float) -> Decimal:
    """A float as a decimal without exponent or trailing zeros (100000.0 -> 100000)."""
    d = Decimal(repr(float(value)))
    return d.quantize(Decimal(1)) if d == d.to_integral_value() else d.normalize()


def step_digits(step: Decimal | float) -> int:
    exponent = Decimal(str(step)).normalize().as_tuple().exponent
    return max(0, -int(exponent))


def utc_ms(ms: int, offset: int = 0) -> datetime:
    """A terminal time in milliseconds (server wall clock read as UTC) as an aware UTC datetime."""
    return datetime.fromtimestamp(ms / 1000 - offset, tz=UTC)


@dataclass(frozen=True)
class Edge:
    """What record mapping needs to know about the account and its server."""

    k: K
    magic: int
    money_digits: int = 2
    offset: int = 0  # seconds the trade server's clock is ahead of UTC (e.g. 7200 for UTC+2)


# ---- requests --------------------------------------------------------------------------------


def filling_code(k: K, filling: FillingMode) -> int:
    return {
        FillingMode.FOK: k.ORDER_FILLING_FOK,
        FillingMode.IOC: k.ORDER_FILLING_IOC,
        FillingMode.RETURN: k.ORDER_FILLING_RETURN,
    }[filling]


def order_type_code(k: K, side: Side, order_type: OrderType) -> int:
    return {
        (Side.BUY, OrderType.MARKET): k.ORDER_TYPE_BUY,
        (Side.SELL, OrderType.MARKET): k.ORDER_TYPE_SELL,
        (Side.BUY, OrderType.LIMIT): k.ORDER_TYPE_BUY_LIMIT,
        (Side.SELL, OrderType.LIMIT): k.ORDER_TYPE_SELL_LIMIT,
        (Side.BUY, OrderType.STOP): k.ORDER_TYPE_BUY_STOP,
        (Side.SELL, OrderType.STOP): k.ORDER_TYPE_SELL_STOP,
    }[(side, order_type)]


def build_order_request(req: OrderRequest, k: K, magic: int, offset: int = 0) -> dict[str, Any]:
    """The ``order_send`` dict for a fully constructed order (nothing is rounded here)."""
    market = req.order_type is OrderType.MARKET
    request: dict[str, Any] = {
        "action": k.TRADE_ACTION_DEAL if market else k.TRADE_ACTION_PENDING,
        "symbol": req.symbol,
        "volume": float(req.volume),
        "type": order_type_code(k, req.side, req.order_type),
        "price": float(req.price),
        "sl": float(req.sl),
        "tp": float(req.tp),
        "deviation": int(req.deviation_points),
        "magic": magic,
        "comment": req.client_order_id,
        "type_time": k.ORDER_TIME_GTC,
        "type_filling": filling_code(k, req.filling),
    }
    if not market and req.expires_at is not None:
        request["type_time"] = k.ORDER_TIME_SPECIFIED
        request["expiration"] = int(req.expires_at.timestamp()) + offset
    return request


def classify(retcode: int) -> tuple[SubmitStatus, str]:
    """What a trade-server retcode means for the caller, and a readable reason."""
    for codes, status in (
        (ACCEPTED_CODES, SubmitStatus.ACCEPTED),
        (RETRY_CODES, SubmitStatus.RETRY),
        (UNKNOWN_CODES, SubmitStatus.UNKNOWN),
        (REFUSED_CODES, SubmitStatus.REFUSED),
    ):
        if retcode in codes:
            return status, codes[retcode]
    return SubmitStatus.UNKNOWN, f"unrecognised retcode {retcode}"


def result_from_send(result: Any, digits: int, volume_digits: int, *, buy: bool) -> SubmitResult:
    """A SubmitResult for an ``OrderSendResult`` (position lookups are the caller's job)."""
    status, reason = classify(int(result.retcode))
    text = f"{reason} ({result.retcode}: {result.comment})"
    if status is SubmitStatus.ACCEPTED:
        ticket = str(result.order) if result.order else None
        price = dec(result.price, digits) if result.price else None
        return SubmitResult(status, int(result.retcode), text, ticket=ticket,
                            filled_volume=dec(result.volume, volume_digits), price=price)  # fmt: skip
    if status is SubmitStatus.RETRY and (result.bid or result.ask):
        fresh = dec(result.ask if buy else result.bid, digits)
        return SubmitResult(status, int(result.retcode), f"{text}; market now {fresh}", price=fresh)
    return SubmitResult(status, int(result.retcode), text)


# ---- records ---------------------------------------------------------------------------------


def spec_from_info(info: Any, k: K) -> SymbolSpec:
    modes = set()
    if info.filling_mode & 1:
        modes.add(FillingMode.FOK)
    if info.filling_mode & 2:
        modes.add(FillingMode.IOC)
    if info.trade_exemode == k.SYMBOL_TRADE_EXECUTION_EXCHANGE:
        modes.add(FillingMode.RETURN)
    digits = int(info.digits)
    volume_step = Decimal(repr(float(info.volume_step)))
    vdigits = step_digits(volume_step)
    return SymbolSpec(
        name=str(info.name),
        digits=digits,
        point=dec(info.point, digits),
        tick_size=dec(info.trade_tick_size, digits),
        tick_value=plain(info.trade_tick_value),
        contract_size=plain(info.trade_contract_size),
        volume_min=dec(info.volume_min, vdigits),
        volume_max=dec(info.volume_max, vdigits),
        volume_step=dec(info.volume_step, vdigits),
        stops_level=int(info.trade_stops_level),
        freeze_level=int(info.trade_freeze_level),
        filling_modes=frozenset(modes),
        trade_allowed=info.trade_mode not in (k.SYMBOL_TRADE_MODE_DISABLED, k.SYMBOL_TRADE_MODE_CLOSEONLY),
        currency_profit=str(info.currency_profit),
    )


def _level(value: float, digits: int) -> Decimal | None:
    return dec(value, digits) if value else None


def position_from_record(p: Any, edge: Edge, digits: int, vdigits: int) -> BrokerPosition:
    k, magic, mdigits = edge.k, edge.magic, edge.money_digits
    return BrokerPosition(
        ticket=str(p.ticket),
        symbol=str(p.symbol),
        side=Side.BUY if p.type == k.POSITION_TYPE_BUY else Side.SELL,
        volume=dec(p.volume, vdigits),
        open_price=dec(p.price_open, digits),
        sl=_level(p.sl, digits),
        tp=_level(p.tp, digits),
        profit=dec(p.profit, mdigits),
        opened_at=utc_ms(p.time_msc, edge.offset),
        client_order_id=client_id_of(p.comment, p.magic, magic),
        current_price=dec(p.price_current, digits),
    )


def order_from_record(o: Any, edge: Edge, digits: int, vdigits: int) -> BrokerOrder | None:
    k, magic = edge.k, edge.magic
    kinds = {
        k.ORDER_TYPE_BUY_LIMIT: (Side.BUY, OrderType.LIMIT),
        k.ORDER_TYPE_SELL_LIMIT: (Side.SELL, OrderType.LIMIT),
        k.ORDER_TYPE_BUY_STOP: (Side.BUY, OrderType.STOP),
        k.ORDER_TYPE_SELL_STOP: (Side.SELL, OrderType.STOP),
        k.ORDER_TYPE_BUY_STOP_LIMIT: (Side.BUY, OrderType.STOP),
        k.ORDER_TYPE_SELL_STOP_LIMIT: (Side.SELL, OrderType.STOP),
    }
    if o.type not in kinds:
        return None
    side, order_type = kinds[o.type]
    expires = None
    if o.time_expiration and o.type_time != k.ORDER_TIME_GTC:
        expires = datetime.fromtimestamp(int(o.time_expiration) - edge.offset, tz=UTC)
    return BrokerOrder(
        ticket=str(o.ticket),
        symbol=str(o.symbol),
        side=side,
        order_type=order_type,
        volume=dec(o.volume_current, vdigits),
        price=dec(o.price_open, digits),
        sl=_level(o.sl, digits),
        tp=_level(o.tp, digits),
        expires_at=expires,
        client_order_id=client_id_of(o.comment, o.magic, magic),
    )


def deal_from_record(d: Any, edge: Edge, digits: int, vdigits: int) -> Deal | None:
    k, magic, mdigits = edge.k, edge.magic, edge.money_digits
    if d.type not in (k.DEAL_TYPE_BUY, k.DEAL_TYPE_SELL):
        return None  # balance, credit, commission... are not trades
    return Deal(
        ticket=str(d.ticket),
        order_ticket=str(d.order),
        position_ticket=str(d.position_id),
        symbol=str(d.symbol),
        side=Side.BUY if d.type == k.DEAL_TYPE_BUY else Side.SELL,
        volume=dec(d.volume, vdigits),
        price=dec(d.price, digits),
        profit=dec(d.profit, mdigits),
        time=utc_ms(d.time_msc, edge.offset),
        entry=_DEAL_ENTRIES.get(int(d.entry), str(d.entry)),
        commission=dec(d.commission, mdigits),
        swap=dec(d.swap, mdigits),
        client_order_id=client_id_of(d.comment, d.magic, magic),
        reason=_DEAL_REASONS.get(int(d.reason), str(d.reason)),
    )
