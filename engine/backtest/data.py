"""Reading bars for a backtest: CSV ``time,open,high,low,close[,volume]`` or MT5's exported bars.

CSV: a header row naming at least ``time,open,high,low,close`` (any order, more columns
ignored), ``time`` in ISO 8601; a time without an offset is read as UTC, one with an offset is
converted to UTC. MetaTrader 5's "Export bars" file: tab-separated, header
``<DATE> <TIME> <OPEN> <HIGH> <LOW> <CLOSE> ...``, dates ``YYYY.MM.DD``, times ``HH:MM[:SS]``
in the trade server's clock, read as UTC. Anything that cannot be used (missing column, bad
number or time, unsorted or duplicate times, a bar whose high/low do not contain its open and
close) raises ``BarsError`` with one line that names the row.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.strategies.base import Bars, BarsError

CSV_COLUMNS = ("time", "open", "high", "low", "close")
MT5_COLUMNS = ("<DATE>", "<TIME>", "<OPEN>", "<HIGH>", "<LOW>", "<CLOSE>")


def _first_line(path: Path) -> str:
    try:
        with path.open("r", encoding="utf-8-sig") as handle:
            return handle.readline()
    except FileNotFoundError:
        raise BarsError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BarsError(f"{path}: cannot read it ({exc})") from None


def _bad_row(frame_index: int, what: str) -> BarsError:
    return BarsError(f"row {frame_index + 2}: {what}")  # +1 for the header, +1 for 1-based


def _prices(frame: object, names: tuple[str, ...]) -> list[np.ndarray]:
    import pandas as pd

    out = []
    for name, label in zip(names, CSV_COLUMNS[1:], strict=True):
        values = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=np.float64)  # type: ignore[index]
        bad = np.flatnonzero(~np.isfinite(values) | (values <= 0))
        if bad.size:
            raw = frame[name].iloc[int(bad[0])]  # type: ignore[index]
            raise _bad_row(int(bad[0]), f"{label} {raw!r} is not a positive number")
        out.append(values)
    return out


def load_bars(path: str | Path) -> Bars:
    """The bars in ``path``, checked; raises ``BarsError`` with one clear line."""
    import pandas as pd

    path = Path(path)
    header = _first_line(path).strip()
    if not header:
        raise BarsError(f"{path}: empty file")
    mt5 = header.upper().startswith("<DATE>")
    try:
        if mt5:
            frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, encoding="utf-8-sig")
            frame.columns = [str(c).strip().upper() for c in frame.columns]
            missing = [c for c in MT5_COLUMNS if c not in frame.columns]
        else:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
            frame.columns = [str(c).strip().lower() for c in frame.columns]
            missing = [c for c in CSV_COLUMNS if c not in frame.columns]
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise BarsError(f"{path}: not a readable CSV file ({str(exc).strip().splitlines()[0]})") from None
    if missing:
        raise BarsError(f"{path}: missing column(s) {', '.join(missing)}")
    if len(frame) == 0:
        raise BarsError(f"{path}: no bars")
    if mt5:
        text = frame["<DATE>"].str.strip() + " " + frame["<TIME>"].str.strip()
        times = pd.to_datetime(text, format="%Y.%m.%d %H:%M:%S", errors="coerce", utc=True)
        short = times.isna()
        if short.any():
            times[short] = pd.to_datetime(text[short], format="%Y.%m.%d %H:%M", errors="coerce", utc=True)
        prices = _prices(frame, MT5_COLUMNS[2:])
    else:
        text = frame["time"].str.strip()
        times = pd.to_datetime(text, format="ISO8601", errors="coerce", utc=True)
        prices = _prices(frame, CSV_COLUMNS[1:])
    bad = np.flatnonzero(times.isna().to_numpy())
    if bad.size:
        k = int(bad[0])
        raise _bad_row(k, f"time {text.iloc[k]!r} is not a date and time")
    seconds = times.to_numpy(dtype="datetime64[s]").astype(np.int64)
    open_, high, low, close = prices
    inside = (low <= np.minimum(open_, close)) & (high >= np.maximum(open_, close))
    bad = np.flatnonzero(~inside)
    if bad.size:
        raise _bad_row(int(bad[0]), "high and low do not contain the open and the close")
    bars = Bars(seconds, open_, high, low, close)
    try:
        bars.check()
    except BarsError as exc:  # the message counts bars; say rows like the others
        message = str(exc)
        if message.startswith("bar "):
            number, rest = message[4:].split(":", 1)
            raise BarsError(f"row {int(number) + 1}:{rest}") from None
        raise
    return bars
