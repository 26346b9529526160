"""Executing trade requests on the simulated server: market deals, closes, pending orders, modifications.

``process`` runs the checks of ``mt5sim.checks`` and, unless ``dry_run`` (``order_check``),
books the result in the open transaction of ``book``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from mt5sim import constants as c
from mt5sim import netting, store
from mt5sim.book import BUY_TYPES, Book
from mt5sim.checks import (
    Refusal,
    check_expiration,
    check_filling,
    check_money,
    check_stops,
    check_symbol,
    check_volume,
    fill_volume,
    find_position,
    frozen,
    market_price,
    pending_price,
)
from mt5sim.specs import Spec

PENDING_TYPES = frozenset(
    {c.ORDER_TYPE_BUY_LIMIT, c.ORDER_TYPE_SELL_LIMIT, c.ORDER_TYPE_BUY_STOP, c.ORDER_TYPE_SELL_STOP}
)


@dataclass
class Outcome:
    retcode: int
    deal: int = 0
    order: int = 0
    volume: Decimal = Decimal(0)
    price: Decimal = Decimal(0)
    bid: Decimal = Decimal(0)
    ask: Decimal = Decimal(0)
    margin: Decimal = Decimal(0)  # margin the request needs (order_check)


def _open_market(book: Book, req: dict[str, Any], dry_run: bool, liquidity: Decimal | None) -> Outcome:
    buy = req["type"] == c.ORDER_TYPE_BUY
    if req["type"] not in (c.ORDER_TYPE_BUY, c.ORDER_TYPE_SELL):
        raise Refusal(c.TRADE_RETCODE_INVALID_ORDER)
    spec = check_symbol(book, req, opening=True, buy=buy)
    volume = check_volume(req, spec)
    check_filling(req, spec, pending=False)
    price = market_price(book, req, spec, buy)
    bid, ask = book.quote(spec.name)
    sl, tp = check_stops(req, spec, bid if buy else ask, buy)
    need = check_money(book, spec, volume, price)
    filled = fill_volume(volume, spec, req["type_filling"], liquidity)
    if dry_run:
        return Outcome(0, volume=volume, price=price, bid=bid, ask=ask, margin=need)
    code = c.TRADE_RETCODE_DONE if filled == volume else c.TRADE_RETCODE_DONE_PARTIAL
    held = netting.position_on(book, spec.name) if netting.is_netting(book) else None
    if held is not None and (held["type"] == c.POSITION_TYPE_BUY) != buy:
        # Netting: an opposite deal reduces the position (and opens the rest the other way).
        reduce = min(filled, held["volume"])
        order, deal = book.close(held, reduce, price, reason=c.DEAL_REASON_EXPERT, comment=req["comment"],
                                 magic=req["magic"], filling=req["type_filling"])  # fmt: skip
        filled_rest = filled - reduce
        if filled_rest <= 0:
            return Outcome(code, deal=deal, order=order, volume=filled, price=price, bid=bid, ask=ask)
        filled, volume = filled_rest, volume - reduce
        held = None
    order = book.add_order(
        symbol=spec.name,
        type=req["type"],
        type_time=c.ORDER_TIME_GTC,
        type_filling=req["type_filling"],
        state=c.ORDER_STATE_FILLED,
        magic=req["magic"],
        position_id=0,
        reason=c.ORDER_REASON_EXPERT,
        volume_initial=volume,
        volume_current=volume - filled,
        price_open=price,
        sl=sl,
        tp=tp,
        price_current=price,
        comment=req["comment"],
    )
    if held is not None:  # netting, same direction: the position grows
        deal = netting.add_to(book, held, spec, order, filled, price, {**req, "sl": sl, "tp": tp})
        return Outcome(code, deal=deal, order=order, volume=filled, price=price, bid=bid, ask=ask)
    book.conn.execute("UPDATE orders SET position_id = ? WHERE ticket = ?", (order, order))
    ptype = c.POSITION_TYPE_BUY if buy else c.POSITION_TYPE_SELL
    deal = book.open_position(order, spec.name, ptype, filled, price, {**req, "sl": sl, "tp": tp})
    return Outcome(code, deal=deal, order=order, volume=filled, price=price, bid=bid, ask=ask)


def _close_market(book: Book, req: dict[str, Any], dry_run: bool, liquidity: Decimal | None) -> Outcome:
    pos = find_position(book, req["position"])
    if req["symbol"] != pos["symbol"]:
        raise Refusal(c.TRADE_RETCODE_INVALID)
    closing_type = c.ORDER_TYPE_SELL if pos["type"] == c.POSITION_TYPE_BUY else c.ORDER_TYPE_BUY
    if req["type"] != closing_type:
        raise Refusal(c.TRADE_RETCODE_INVALID)
    spec = check_symbol(book, req, opening=False, buy=closing_type == c.ORDER_TYPE_BUY)
    volume = check_volume(req, spec)
    if volume > pos["volume"]:
        raise Refusal(c.TRADE_RETCODE_INVALID_CLOSE_VOLUME)
    check_filling(req, spec, pending=False)
    price = market_price(book, req, spec, closing_type == c.ORDER_TYPE_BUY)
    if frozen(spec, price, pos["sl"], pos["tp"]):
        raise Refusal(c.TRADE_RETCODE_FROZEN)
    filled = fill_volume(volume, spec, req["type_filling"], liquidity)
    bid, ask = book.quote(spec.name)
    if dry_run:
        return Outcome(0, volume=volume, price=price, bid=bid, ask=ask)
    order, deal = book.close(
        pos,
        filled,
        price,
        reason=c.DEAL_REASON_EXPERT,
        comment=req["comment"],
        magic=req["magic"],
        filling=req["type_filling"],
    )
    code = c.TRADE_RETCODE_DONE if filled == volume else c.TRADE_RETCODE_DONE_PARTIAL
    return Outcome(code, deal=deal, order=order, volume=filled, price=price, bid=bid, ask=ask)


def _place_pending(book: Book, req: dict[str, Any], dry_run: bool) -> Outcome:
    otype = req["type"]
    if otype not in PENDING_TYPES:
        raise Refusal(c.TRADE_RETCODE_INVALID_ORDER)
    buy = otype in BUY_TYPES
    spec = check_symbol(book, req, opening=True, buy=buy)
    volume = check_volume(req, spec)
    check_filling(req, spec, pending=True)
    price = pending_price(book, spec, otype, req["price"])
    sl, tp = check_stops(req, spec, price, buy)
    expires = check_expiration(book, spec, req)
    bid, ask = book.quote(spec.name)
    if dry_run:
        return Outcome(0, volume=volume, bid=bid, ask=ask, margin=book.margin_for(spec.name, volume, price))
    order = book.add_order(
        symbol=spec.name,
        type=otype,
        type_time=req["type_time"],
        type_filling=req["type_filling"],
        state=c.ORDER_STATE_PLACED,
        magic=req["magic"],
        position_id=0,
        reason=c.ORDER_REASON_EXPERT,
        volume_initial=volume,
        volume_current=volume,
        price_open=price,
        sl=sl,
        tp=tp,
        price_current=ask if buy else bid,
        time_done_msc=0,
        time_expiration=expires,
        comment=req["comment"],
    )
    return Outcome(c.TRADE_RETCODE_PLACED, order=order, volume=volume, bid=bid, ask=ask)


def _active_order(book: Book, ticket: int) -> tuple[dict[str, Any], Spec]:
    row = book.conn.execute(
        "SELECT * FROM orders WHERE ticket = ? AND login = ? AND state = ?",
        (ticket, book.login, c.ORDER_STATE_PLACED),
    ).fetchone()
    if row is None:
        raise Refusal(c.TRADE_RETCODE_INVALID_ORDER)
    order = store.row_dict(row)
    spec = book.specs[order["symbol"]]
    if not book.tradeable(spec):
        raise Refusal(c.TRADE_RETCODE_MARKET_CLOSED)
    bid, ask = book.quote(spec.name)
    if frozen(spec, ask if order["type"] in BUY_TYPES else bid, order["price_open"]):
        raise Refusal(c.TRADE_RETCODE_FROZEN)
    return order, spec


def _remove(book: Book, req: dict[str, Any], dry_run: bool) -> Outcome:
    order, _ = _active_order(book, req["order"])
    if not dry_run:
        book.conn.execute(
            "UPDATE orders SET state = ?, time_done_msc = ? WHERE ticket = ?",
            (c.ORDER_STATE_CANCELED, book.now, order["ticket"]),
        )
    return Outcome(c.TRADE_RETCODE_DONE, order=order["ticket"])


def _modify_order(book: Book, req: dict[str, Any], dry_run: bool) -> Outcome:
    order, spec = _active_order(book, req["order"])
    buy = order["type"] in BUY_TYPES
    price = pending_price(book, spec, order["type"], req["price"])
    sl, tp = check_stops(req, spec, price, buy)
    expires = check_expiration(book, spec, req)
    if (price, sl, tp, expires) == (order["price_open"], order["sl"], order["tp"], order["time_expiration"]):
        raise Refusal(c.TRADE_RETCODE_NO_CHANGES)
    if not dry_run:
        book.conn.execute(
            "UPDATE orders SET price_open = ?, sl = ?, tp = ?, type_time = ?, time_expiration = ? WHERE ticket = ?",
            (str(price), str(sl), str(tp), req["type_time"], expires, order["ticket"]),
        )
    return Outcome(c.TRADE_RETCODE_DONE, order=order["ticket"])


def _modify_position(book: Book, req: dict[str, Any], dry_run: bool) -> Outcome:
    pos = find_position(book, req["position"])
    spec = book.specs[pos["symbol"]]
    if not book.tradeable(spec):
        raise Refusal(c.TRADE_RETCODE_MARKET_CLOSED)
    buy = pos["type"] == c.POSITION_TYPE_BUY
    price = book.close_price(pos)
    if frozen(spec, price, pos["sl"], pos["tp"]):
        raise Refusal(c.TRADE_RETCODE_FROZEN)
    sl, tp = check_stops(req, spec, price, buy)
    if (sl, tp) == (pos["sl"], pos["tp"]):
        raise Refusal(c.TRADE_RETCODE_NO_CHANGES)
    if not dry_run:
        book.conn.execute(
            "UPDATE positions SET sl = ?, tp = ?, time_update_msc = ? WHERE ticket = ?",
            (str(sl), str(tp), book.now, pos["ticket"]),
        )
    return Outcome(c.TRADE_RETCODE_DONE, order=0)


def process(
    book: Book, req: dict[str, Any], *, dry_run: bool = False, liquidity: Decimal | None = None
) -> Outcome:
    """Check (and unless ``dry_run`` execute) one parsed request for the book's account."""
    try:
        action = req["action"]
        if action == c.TRADE_ACTION_DEAL:
            if req["position"]:
                return _close_market(book, req, dry_run, liquidity)
            return _open_market(book, req, dry_run, liquidity)
        if action == c.TRADE_ACTION_PENDING:
            return _place_pending(book, req, dry_run)
        if action == c.TRADE_ACTION_REMOVE:
            return _remove(book, req, dry_run)
        if action == c.TRADE_ACTION_MODIFY:
            return _modify_order(book, req, dry_run)
        if action == c.TRADE_ACTION_SLTP:
            return _modify_position(book, req, dry_run)
        raise Refusal(c.TRADE_RETCODE_INVALID)
    except Refusal as refusal:
        bid, ask = refusal.bid, refusal.ask
        return Outcome(refusal.retcode, bid=bid, ask=ask)
