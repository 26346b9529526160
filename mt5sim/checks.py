"""The trade server's checks of a request, in the order a server applies them.

``parse_request`` rejects what the real client library rejects before anything reaches the
server: it answers the ``last_error`` pair (e.g. ``(-2, 'Invalid "comment" argument')`` for a
comment over 31 characters, or a ``Decimal`` where a float belongs). The other checks raise
``Refusal`` with the retcode the server would answer.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from mt5sim import constants as c
from mt5sim import store
from mt5sim.book import Book, floor_to_step
from mt5sim.specs import Spec

MAX_COMMENT = 31
_FLOAT_KEYS = ("volume", "price", "stoplimit", "sl", "tp")
_INT_KEYS = ("action", "magic", "order", "deviation", "type", "type_filling", "type_time", "expiration")
_INT_KEYS_2 = ("position", "position_by")


class Refusal(Exception):
    def __init__(self, retcode: int, bid: Decimal = Decimal(0), ask: Decimal = Decimal(0)) -> None:
        super().__init__(retcode)
        self.retcode, self.bid, self.ask = retcode, bid, ask


def parse_request(raw: Any) -> tuple[dict[str, Any] | None, tuple[int, str]]:
    """Normalise a request dict; floats become Decimal. Returns (request, error)."""
    if not isinstance(raw, dict):
        return None, (c.RES_E_INVALID_PARAMS, "Invalid arguments")
    req: dict[str, Any] = {"symbol": "", "comment": ""}
    for key, value in raw.items():
        if key in _FLOAT_KEYS:
            if isinstance(value, bool) or not isinstance(value, int | float):
                return None, (c.RES_E_INVALID_PARAMS, f'Invalid "{key}" argument')
            req[key] = Decimal(repr(float(value)))
        elif key in _INT_KEYS or key in _INT_KEYS_2:
            if isinstance(value, bool) or not isinstance(value, int):
                return None, (c.RES_E_INVALID_PARAMS, f'Invalid "{key}" argument')
            req[key] = value
        elif key in ("symbol", "comment"):
            if not isinstance(value, str) or (key == "comment" and len(value) > MAX_COMMENT):
                return None, (c.RES_E_INVALID_PARAMS, f'Invalid "{key}" argument')
            req[key] = value
        else:
            return None, (c.RES_E_INVALID_PARAMS, f'Invalid "{key}" argument')
    for key in _FLOAT_KEYS:
        req.setdefault(key, Decimal(0))
    for key in (*_INT_KEYS, *_INT_KEYS_2):
        req.setdefault(key, 0)
    if "action" not in raw:
        return None, (c.RES_E_INVALID_PARAMS, 'Invalid "action" argument')
    return req, (c.RES_S_OK, "Success")


def on_grid(value: Decimal, spec: Spec) -> Decimal | None:
    """The value snapped to the tick grid, or None when it is not on it (beyond float noise)."""
    ticks = value / spec.tick_size
    nearest = ticks.to_integral_value()
    if abs(ticks - nearest) > Decimal("0.000001"):
        return None
    return (nearest * spec.tick_size).quantize(spec.point)


def check_volume(req: dict[str, Any], spec: Spec) -> Decimal:
    steps = req["volume"] / spec.volume_step
    nearest = steps.to_integral_value()
    volume = nearest * spec.volume_step
    if (
        abs(steps - nearest) > Decimal("0.000001")
        or volume < spec.volume_min
        or volume > spec.volume_max
        or volume <= 0
    ):
        raise Refusal(c.TRADE_RETCODE_INVALID_VOLUME)
    return volume


def check_symbol(book: Book, req: dict[str, Any], *, opening: bool, buy: bool) -> Spec:
    spec = book.specs.get(req["symbol"])
    if spec is None:
        raise Refusal(c.TRADE_RETCODE_INVALID)
    selected = book.conn.execute(
        "SELECT 1 FROM selected WHERE login = ? AND symbol = ?", (book.login, spec.name)
    ).fetchone()
    if selected is None:
        raise Refusal(c.TRADE_RETCODE_PRICE_OFF)
    if store.get_meta(book.conn, "terminal_trade_allowed", "1") != "1":
        raise Refusal(c.TRADE_RETCODE_CLIENT_DISABLES_AT)
    if not book.account()["trade_allowed"] or spec.trade_mode == c.SYMBOL_TRADE_MODE_DISABLED:
        raise Refusal(c.TRADE_RETCODE_TRADE_DISABLED)
    if opening and spec.trade_mode == c.SYMBOL_TRADE_MODE_CLOSEONLY:
        raise Refusal(c.TRADE_RETCODE_CLOSE_ONLY)
    if opening and spec.trade_mode == c.SYMBOL_TRADE_MODE_LONGONLY and not buy:
        raise Refusal(c.TRADE_RETCODE_LONG_ONLY)
    if opening and spec.trade_mode == c.SYMBOL_TRADE_MODE_SHORTONLY and buy:
        raise Refusal(c.TRADE_RETCODE_SHORT_ONLY)
    if not book.tradeable(spec):
        raise Refusal(c.TRADE_RETCODE_MARKET_CLOSED)
    return spec


def check_filling(req: dict[str, Any], spec: Spec, *, pending: bool) -> None:
    filling = req["type_filling"]
    allowed = set()
    if spec.filling_mode & c.FILLING_BIT_FOK:
        allowed.add(c.ORDER_FILLING_FOK)
    if spec.filling_mode & c.FILLING_BIT_IOC:
        allowed.add(c.ORDER_FILLING_IOC)
    if pending or spec.exemode == c.SYMBOL_TRADE_EXECUTION_EXCHANGE:
        allowed.add(c.ORDER_FILLING_RETURN)
    if filling not in allowed:
        raise Refusal(c.TRADE_RETCODE_INVALID_FILL)


def check_stops(req: dict[str, Any], spec: Spec, ref: Decimal, buy: bool) -> tuple[Decimal, Decimal]:
    """SL/TP on the grid, on the right side of ``ref`` and at least the stops level away."""
    level = spec.point * spec.stops_level
    out = []
    for key, below in (("sl", buy), ("tp", not buy)):
        value = req[key]
        if value == 0:
            out.append(Decimal(0))
            continue
        snapped = on_grid(value, spec)
        distance = (ref - value) if below else (value - ref)
        if snapped is None or distance <= 0 or distance < level:
            raise Refusal(c.TRADE_RETCODE_INVALID_STOPS)
        out.append(snapped)
    return out[0], out[1]


def market_price(book: Book, req: dict[str, Any], spec: Spec, buy: bool) -> Decimal:
    bid, ask = book.quote(spec.name)
    current = ask if buy else bid
    if spec.exemode in (c.SYMBOL_TRADE_EXECUTION_INSTANT, c.SYMBOL_TRADE_EXECUTION_REQUEST):
        if req["price"] <= 0:
            raise Refusal(c.TRADE_RETCODE_INVALID_PRICE)
        if abs(req["price"] - current) > spec.point * req["deviation"]:
            raise Refusal(c.TRADE_RETCODE_REQUOTE, bid, ask)
    return current


def fill_volume(volume: Decimal, spec: Spec, filling: int, liquidity: Decimal | None) -> Decimal:
    if liquidity is None:
        return volume
    available = floor_to_step(volume * liquidity, spec.volume_step)
    if available >= volume:
        return volume
    if filling == c.ORDER_FILLING_FOK or available < spec.volume_min:
        raise Refusal(c.TRADE_RETCODE_REJECT)
    return available


def check_money(book: Book, spec: Spec, volume: Decimal, price: Decimal) -> Decimal:
    need = book.margin_for(spec.name, volume, price)
    if need > book.state()["margin_free"]:
        raise Refusal(c.TRADE_RETCODE_NO_MONEY)
    return need


def frozen(spec: Spec, price: Decimal, *levels: Decimal) -> bool:
    band = spec.point * spec.freeze_level
    return spec.freeze_level > 0 and any(lv > 0 and abs(price - lv) <= band for lv in levels)


def pending_price(book: Book, spec: Spec, otype: int, price: Decimal) -> Decimal:
    snapped = on_grid(price, spec) if price > 0 else None
    if snapped is None:
        raise Refusal(c.TRADE_RETCODE_INVALID_PRICE)
    bid, ask = book.quote(spec.name)
    level = spec.point * spec.stops_level
    distance = {
        c.ORDER_TYPE_BUY_LIMIT: ask - price,
        c.ORDER_TYPE_SELL_LIMIT: price - bid,
        c.ORDER_TYPE_BUY_STOP: price - ask,
        c.ORDER_TYPE_SELL_STOP: bid - price,
    }[otype]
    if distance <= 0 or distance < level:
        raise Refusal(c.TRADE_RETCODE_INVALID_PRICE)
    return snapped


def check_expiration(book: Book, spec: Spec, req: dict[str, Any]) -> int:
    bits = {
        c.ORDER_TIME_GTC: c.EXPIRATION_BIT_GTC,
        c.ORDER_TIME_DAY: c.EXPIRATION_BIT_DAY,
        c.ORDER_TIME_SPECIFIED: c.EXPIRATION_BIT_SPECIFIED,
        c.ORDER_TIME_SPECIFIED_DAY: c.EXPIRATION_BIT_SPECIFIED_DAY,
    }
    type_time = req["type_time"]
    if type_time not in bits or not spec.expiration_mode & bits[type_time]:
        raise Refusal(c.TRADE_RETCODE_INVALID_EXPIRATION)
    now_s = book.now // 1000
    if type_time == c.ORDER_TIME_GTC:
        return 0
    if type_time == c.ORDER_TIME_DAY:
        return (now_s // 86400 + 1) * 86400
    expiration = req["expiration"]
    if expiration <= now_s:
        raise Refusal(c.TRADE_RETCODE_INVALID_EXPIRATION)
    if type_time == c.ORDER_TIME_SPECIFIED_DAY:
        return (expiration // 86400 + 1) * 86400
    return int(expiration)


def find_position(book: Book, ticket: int) -> dict[str, Any]:
    row = book.conn.execute("SELECT * FROM positions WHERE ticket = ? AND login = ?", (ticket, book.login))
    found = row.fetchone()
    if found is None:
        raise Refusal(c.TRADE_RETCODE_POSITION_CLOSED)
    return store.row_dict(found)
