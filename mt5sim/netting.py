"""Netting and exchange accounts (``margin_mode`` 0 and 1): one position per symbol.

On such an account a market deal on a symbol that already has a position changes that position
instead of opening another one:
- the same direction adds to it: the volumes add up, the open price becomes the volume-weighted
  average (rounded to the symbol's digits), and a non-zero SL/TP in the request replaces the
  position's;
- the opposite direction reduces it (an out-deal with its profit, like a partial close); a
  volume above the position's closes it and opens the rest the other way (booked as a close and
  an open, where a real server books one in/out deal).
The position keeps its ticket throughout, and every deal carries it as ``position_id``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from mt5sim import constants as c
from mt5sim.book import Book
from mt5sim.specs import Spec


def is_netting(book: Book) -> bool:
    return int(book.account()["margin_mode"]) != c.ACCOUNT_MARGIN_MODE_RETAIL_HEDGING


def position_on(book: Book, symbol: str) -> dict[str, Any] | None:
    found = book.positions(symbol)
    return found[0] if found else None


def add_to(
    book: Book,
    pos: dict[str, Any],
    spec: Spec,
    order: int,
    volume: Decimal,
    price: Decimal,
    req: dict[str, Any],
) -> int:
    """Book a same-direction deal on ``pos``; returns the deal ticket."""
    total = pos["volume"] + volume
    average = ((pos["price_open"] * pos["volume"] + price * volume) / total).quantize(spec.point)
    sl = req["sl"] or pos["sl"]
    tp = req["tp"] or pos["tp"]
    book.conn.execute(
        "UPDATE positions SET volume = ?, price_open = ?, sl = ?, tp = ?, time_update_msc = ? WHERE ticket = ?",
        (str(total), str(average), str(sl), str(tp), book.now, pos["ticket"]),
    )
    book.conn.execute("UPDATE orders SET position_id = ? WHERE ticket = ?", (pos["ticket"], order))
    return book.add_deal(
        order_ticket=order,
        type=c.DEAL_TYPE_BUY if pos["type"] == c.POSITION_TYPE_BUY else c.DEAL_TYPE_SELL,
        entry=c.DEAL_ENTRY_IN,
        magic=req["magic"],
        position_id=pos["ticket"],
        reason=c.DEAL_REASON_EXPERT,
        volume=volume,
        price=price,
        symbol=spec.name,
        comment=req["comment"],
    )
