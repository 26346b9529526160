"""CSV export of closed trades.

The columns, in this order (a contract: append new columns at the end, never reorder):

``position_id, account_id, symbol, side, volume, open_time, open_price, close_time, close_price,
profit, commission, swap, net, close_reason, signal_id, strategy``

* times are ISO 8601 in UTC with a ``Z`` suffix (``2026-10-05T14:03:00Z``; microseconds only when
  there are any);
* numbers are plain decimal strings, exactly as stored (``0.00001``, never ``1E-5``); ``net`` is
  ``profit + commission + swap``;
* an absent value (no close price, no signal, no strategy) is an empty field;
* a text field (symbol, side, close_reason, signal_id, strategy: some come from producers) that
  starts with ``= + - @ '``, a tab or a carriage return gets a leading ``'`` so a spreadsheet
  never evaluates it as a formula; the parser removes exactly that one ``'``;
* UTF-8 without a byte-order mark, comma separated, ``\\r\\n`` line ends (RFC 4180), one header row;
  rows by close time.

``parse_trades_csv`` reads such a file back into ``Trade`` objects (and checks ``net``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from engine.analytics.data import Trade

COLUMNS = (
    "position_id",
    "account_id",
    "symbol",
    "side",
    "volume",
    "open_time",
    "open_price",
    "close_time",
    "close_price",
    "profit",
    "commission",
    "swap",
    "net",
    "close_reason",
    "signal_id",
    "strategy",
)


class ExportFormatError(ValueError):
    pass


@dataclass(frozen=True)
class ExportFile:
    """A CSV ready to send as a document."""

    filename: str
    content: bytes
    count: int  # trades in it


def format_decimal(value: Decimal | None) -> str:
    if value is None:
        return ""
    text = format(value, "f")
    return "0" if value == 0 else text


def format_time(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("naive datetime in a trade")
    text = value.astimezone(UTC).replace(tzinfo=None).isoformat()
    return text + "Z"


_FORMULA_START = ("=", "+", "-", "@", "'", "\t", "\r")


def escape_text(value: str | None) -> str:
    """Neutralise spreadsheet formulas (CSV injection) reversibly."""
    if not value:
        return ""
    return "'" + value if value.startswith(_FORMULA_START) else value


def unescape_text(value: str) -> str | None:
    if not value:
        return None
    return value[1:] if value.startswith("'") else value


def trade_row(trade: Trade) -> list[str]:
    return [
        str(trade.position_id),
        str(trade.account_id),
        escape_text(trade.symbol),
        escape_text(trade.side),
        format_decimal(trade.volume),
        format_time(trade.open_time),
        format_decimal(trade.open_price),
        format_time(trade.close_time),
        format_decimal(trade.close_price),
        format_decimal(trade.profit),
        format_decimal(trade.commission),
        format_decimal(trade.swap),
        format_decimal(trade.net),
        escape_text(trade.close_reason),
        escape_text(trade.signal_id),
        escape_text(trade.strategy),
    ]


def trades_to_csv(trades: Iterable[Trade]) -> bytes:
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for trade in trades:
        writer.writerow(trade_row(trade))
    return buf.getvalue().encode("utf-8")


def export_filename(scope_slug: str, period_spec: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in period_spec)
    return f"trades_{scope_slug}_{safe}.csv"


def _decimal(value: str, column: str, line: int) -> Decimal:
    try:
        result = Decimal(value)
    except InvalidOperation:
        raise ExportFormatError(f"line {line}: {column} is not a number: {value!r}") from None
    if not result.is_finite():
        raise ExportFormatError(f"line {line}: {column} is not finite")
    return result


def _time(value: str, column: str, line: int) -> datetime:
    if not value.endswith("Z"):
        raise ExportFormatError(f"line {line}: {column} is not a UTC time: {value!r}")
    try:
        return datetime.fromisoformat(value[:-1]).replace(tzinfo=UTC)
    except ValueError:
        raise ExportFormatError(f"line {line}: {column} is not a time: {value!r}") from None


def parse_trades_csv(data: bytes | str) -> list[Trade]:
    """Read an export back; raises ``ExportFormatError`` on a wrong header or value."""
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None or tuple(header) != COLUMNS:
        raise ExportFormatError(f"unexpected header: {header!r}")
    trades: list[Trade] = []
    for line, row in enumerate(reader, start=2):
        if len(row) != len(COLUMNS):
            raise ExportFormatError(f"line {line}: {len(row)} fields, expected {len(COLUMNS)}")
        f = dict(zip(COLUMNS, row, strict=True))
        try:
            position_id, account_id = int(f["position_id"]), int(f["account_id"])
        except ValueError:
            raise ExportFormatError(f"line {line}: ids must be integers") from None
        trade = Trade(
            position_id=position_id,
            account_id=account_id,
            symbol=unescape_text(f["symbol"]) or "",
            side=unescape_text(f["side"]) or "",
            volume=_decimal(f["volume"], "volume", line),
            open_time=_time(f["open_time"], "open_time", line),
            open_price=_decimal(f["open_price"], "open_price", line),
            close_time=_time(f["close_time"], "close_time", line),
            close_price=_decimal(f["close_price"], "close_price", line) if f["close_price"] else None,
            profit=_decimal(f["profit"], "profit", line),
            commission=_decimal(f["commission"], "commission", line),
            swap=_decimal(f["swap"], "swap", line),
            close_reason=unescape_text(f["close_reason"]),
            signal_id=unescape_text(f["signal_id"]),
            strategy=unescape_text(f["strategy"]),
        )
        if _decimal(f["net"], "net", line) != trade.net:
            raise ExportFormatError(f"line {line}: net is not profit + commission + swap")
        trades.append(trade)
    return trades
