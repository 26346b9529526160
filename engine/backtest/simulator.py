"""Replay closed bars through a strategy and the live order construction, with the reference's fills.

The strategy (the very class the live producer runs) gets the bars and answers with the setups
final at each bar. Each setup is placed at that bar's close: ``engine.strategies.placement``
moves a limit that is at or beyond the market (the close; no spread) or refuses it, then
``engine.execution.orders.build_order`` (the code every live order goes through) sizes it from the
equity, the stop distance and the symbol spec, or refuses it (status ``refused``; a refused
order cancels nothing). A new placed setup cancels the previous same-direction order if it is
still pending. Then, bar by bar:

- a pending order expires when a bar opens more than 100 h after its bar's open (so it had until
  the close of bar ``e + 100``); otherwise a sell limit fills in the first bar with
  ``high >= entry``, at the entry or at the open when the bar opens above it (buy mirrors);
- from the bar after the fill, a bar touching the stop exits there (at the open when it gaps
  through), even when it also touches the target; otherwise a bar touching the target exits there.

Equity for sizing is the balance plus the open positions marked at the close. Money is Decimal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

import numpy as np

from engine.brokers.base import AccountSnapshot, OrderType, Side, SymbolSpec, Tick
from engine.execution.orders import BuiltOrder, OrderRules, SignalParams, build_order, round_to_step
from engine.strategies.base import H1_SECONDS, Bars, Setup, Strategy, decimal_price, utc
from engine.strategies.placement import place_limit

Progress = Callable[[int], None]  # bars done so far
EXPIRY_SECONDS = 100 * H1_SECONDS


@dataclass
class BacktestTrade:
    """One setup and what became of its order (a row of trades.csv)."""

    setup: Setup
    entry: Decimal  # as placed (moved when it was at or beyond the market)
    status: str  # pending | refused | cancelled | expired | filled | closed
    bar_index: int
    volume: Decimal | None = None
    refusal: str | None = None
    filled_at: datetime | None = None
    fill_price: Decimal | None = None
    fill_index: int = -1
    exit_at: datetime | None = None
    exit_price: Decimal | None = None
    exit_reason: str | None = None
    profit: Decimal | None = None
    # the levels as floats, to compare with the bars (exact: both come from the same decimals)
    sell: bool = field(init=False)
    deadline: int = field(init=False)  # last bar open time at which the order may still fill
    entry_f: float = field(init=False)
    sl_f: float = field(init=False)
    tp_f: float = field(init=False)

    def __post_init__(self) -> None:
        self.sell = self.setup.side is Side.SELL
        self.deadline = int(self.setup.bar_time.timestamp()) + EXPIRY_SECONDS
        self.entry_f, self.sl_f, self.tp_f = float(self.entry), float(self.setup.sl), float(self.setup.tp)


@dataclass
class BacktestResult:
    symbol: str
    strategy: str
    spec: SymbolSpec
    balance: Decimal
    risk_percent: Decimal
    start: datetime  # first bar's open
    end: datetime  # last bar's close
    bars: int
    trades: list[BacktestTrade] = field(default_factory=list)
    refusals: dict[str, int] = field(default_factory=dict)

    @property
    def end_balance(self) -> Decimal:
        return self.balance + sum((t.profit for t in self.trades if t.profit is not None), Decimal(0))


def _on_tick(price: float, spec: SymbolSpec) -> Decimal:
    return round_to_step(decimal_price(price), spec.tick_size, "nearest")


class _Book:
    def __init__(self, spec: SymbolSpec, balance: Decimal) -> None:
        self.spec = spec
        self.balance = balance
        self.pending: list[BacktestTrade] = []
        self.open: list[BacktestTrade] = []
        self.last: dict[Side, BacktestTrade] = {}

    def pnl(self, trade: BacktestTrade, price: Decimal) -> Decimal:
        assert trade.fill_price is not None and trade.volume is not None
        move = (trade.fill_price - price) if trade.sell else (price - trade.fill_price)
        return move / self.spec.tick_size * self.spec.tick_value * trade.volume

    def equity(self, close: Decimal) -> Decimal:
        return self.balance + sum((self.pnl(t, close) for t in self.open), Decimal(0))


def run_backtest(
    strategy: Strategy,
    bars: Bars,
    spec: SymbolSpec,
    *,
    balance: Decimal,
    risk_percent: Decimal,
    rules: OrderRules | None = None,
    progress: Progress | None = None,
) -> BacktestResult:
    """Replay ``bars`` through ``strategy``; every setup's order, fill and exit."""
    if len(bars) == 0:
        raise ValueError("no bars to replay")
    rules = rules or OrderRules(pending_when_closed=True)
    setups = strategy.update(bars)
    at_bar: dict[int, list[Setup]] = {}
    positions = np.searchsorted(bars.time, [int(s.bar_time.timestamp()) for s in setups])
    for index, setup in zip(positions.tolist(), setups, strict=True):
        at_bar.setdefault(index, []).append(setup)
    result = BacktestResult(
        symbol=spec.name,
        strategy=strategy.name,
        spec=spec,
        balance=balance,
        risk_percent=risk_percent,
        start=utc(int(bars.time[0])),
        end=utc(int(bars.time[-1]) + H1_SECONDS),
        bars=len(bars),
    )
    book = _Book(spec, balance)
    times = bars.time.tolist()
    opens, highs, lows, closes = (a.tolist() for a in (bars.open, bars.high, bars.low, bars.close))
    step = max(1, len(times) // 200)
    for k, t in enumerate(times):
        o, h, lo = opens[k], highs[k], lows[k]
        if book.pending:
            _fill_pending(book, k, t, o, h, lo, spec)
        if book.open:
            _exit_open(book, k, t, o, h, lo, spec)
        for setup in at_bar.get(k, ()):
            result.trades.append(_place(book, setup, k, closes[k], spec, risk_percent, rules, result))
        if progress is not None and (k + 1) % step == 0:
            progress(k + 1)
    last_close = result.end
    for trade in book.pending:
        if trade.setup.expires_at <= last_close:
            trade.status = "expired"
    if progress is not None:
        progress(len(times))
    result.trades.sort(key=lambda tr: (tr.setup.placed_at, tr.setup.setup_id))
    return result


def _fill_pending(book: _Book, k: int, t: int, o: float, h: float, lo: float, spec: SymbolSpec) -> None:
    waiting = []
    for trade in book.pending:
        if t > trade.deadline:
            trade.status = "expired"
            continue
        entry = trade.entry_f
        if trade.sell and h >= entry:
            price = trade.entry if o <= entry else _on_tick(o, spec)
        elif not trade.sell and lo <= entry:
            price = trade.entry if o >= entry else _on_tick(o, spec)
        else:
            waiting.append(trade)
            continue
        trade.status, trade.fill_price, trade.filled_at, trade.fill_index = "filled", price, utc(t), k
        book.open.append(trade)
    book.pending = waiting


def _exit_open(book: _Book, k: int, t: int, o: float, h: float, lo: float, spec: SymbolSpec) -> None:
    still = []
    for trade in book.open:
        if trade.fill_index >= k:
            still.append(trade)
            continue
        sl, tp = trade.sl_f, trade.tp_f
        if trade.sell:
            hit_sl, hit_tp = h >= sl, lo <= tp
            gap_sl, gap_tp = o > sl, o < tp
        else:
            hit_sl, hit_tp = lo <= sl, h >= tp
            gap_sl, gap_tp = o < sl, o > tp
        if hit_sl:
            reason, level, gapped = "sl", trade.setup.sl, gap_sl
        elif hit_tp:
            reason, level, gapped = "tp", trade.setup.tp, gap_tp
        else:
            still.append(trade)
            continue
        price = _on_tick(o, spec) if gapped else level
        trade.status, trade.exit_reason, trade.exit_price, trade.exit_at = "closed", reason, price, utc(t)
        trade.profit = book.pnl(trade, price)
        book.balance += trade.profit
    book.open = still


def _place(
    book: _Book,
    setup: Setup,
    k: int,
    close: float,
    spec: SymbolSpec,
    risk_percent: Decimal,
    rules: OrderRules,
    result: BacktestResult,
) -> BacktestTrade:
    market = decimal_price(close)
    placement = place_limit(setup, market, market, spec.point, spec.tick_size)
    trade = BacktestTrade(setup=setup, entry=placement.entry, status="refused", bar_index=k)
    if placement.refused is not None:
        trade.refusal = "moved_beyond_stop"
        result.refusals[trade.refusal] = result.refusals.get(trade.refusal, 0) + 1
        return trade
    equity = book.equity(market)
    built = build_order(
        client_order_id=setup.setup_id,
        signal=SignalParams(setup.side, OrderType.LIMIT, placement.entry, setup.sl, setup.tp, risk_percent),
        account=AccountSnapshot("backtest", book.balance, equity, Decimal(0), equity, spec.currency_profit),
        spec=spec,
        tick=Tick(spec.name, market, market, setup.placed_at),
        rules=rules,
        now=setup.placed_at,
    )
    if not isinstance(built, BuiltOrder):
        trade.refusal = built.code.value
        result.refusals[trade.refusal] = result.refusals.get(trade.refusal, 0) + 1
        return trade
    previous = book.last.get(setup.side)
    if previous is not None and previous.status == "pending":
        previous.status = "cancelled"
        book.pending.remove(previous)
    trade.status, trade.volume = "pending", built.request.volume
    book.pending.append(trade)
    book.last[setup.side] = trade
    return trade
