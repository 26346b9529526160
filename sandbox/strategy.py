"""The built-in Fib-RSI strategy in the sandbox, on the simulated terminal's accelerated bars.

The sandbox runs ``STRATEGIES=fib-rsi:XAUUSD,EURUSD`` inside the product, as an operator would in
``tradebot run``: the producer ``strategy-fib-rsi`` reads closed H1 bars from the simulated
terminal (``MT5_MODULE=mt5sim``, the operator's data login) and posts each setup through the
product's own webhook. The demo producer keeps posting for the other instruments.

Real H1 bars would give a setup every few days, so the terminal's bar clock
(``mt5sim.control.set_bar_clock``) closes an "H1" bar every ``BAR_SECONDS`` real seconds; quotes
are unchanged (a bar is the feed's bid sampled over its real seconds), so paper prices, the demo
signals and the bars agree.

The numbers come from measuring the seeded series (``python bench/sandbox_setups.py``: the bars
the producer reads, fed to Fib-RSI bar by bar; three starting points, 8,000 bars a symbol each).
XAUUSD and EURUSD together give 2 to 3.4 setups per 100 bars at every bar speed from 0.5 to 3 s,
clustered: from a random start the first setup is final after a median of 19-32 bars, within
57-130 bars nine times in ten, and within about 300 always. So the bar speed sets the wait:

| seconds per bar | first Fib-RSI signal: median / 90 % / 99 % | placeable when emitted |
|---|---|---|
| 0.5 | 10 / 33-36 / 68-77 s | 15-17 % |
| 1 (default) | 19-31 / 57-110 / 113-187 s | 37-44 % |
| 2 | 50-64 / 162-260 / 280-456 s | 65-67 % |
| 3 | 78-96 / 246-345 / 603-786 s | 72-79 % |

At one second a bar a newcomer usually sees a Fib-RSI signal within the first minute and nearly
always within three. The price: bars are the feed's moves over a second, so many setups have a
stop inside the symbol's stops level (EURUSD's especially) and are refused with that reason when
approved ("placeable": accepted by the engine's order rules at the market when posted);
``--bar-seconds 3`` gives roomier setups, less often.

The producer polls four times a bar (it only posts a setup final at the newest closed bar, so a
poll must not miss a bar), and primes each symbol with 300 bars: the 200-bar window plus 100 for
the RSI to settle (``STRATEGY_HISTORY_BARS`` may not be under 200).
"""

from __future__ import annotations

from collections.abc import Iterable

STRATEGY = "fib-rsi"
SYMBOLS = ("XAUUSD", "EURUSD")
PRODUCER = f"strategy-{STRATEGY}"  # the product's own producer for it (engine.strategies.runner)
DEMO_PRODUCER = "demo-strategy"
BAR_SECONDS = 1.0
MIN_BAR_SECONDS = 0.2
POLLS_PER_BAR = 4
MIN_POLL_SECONDS = 0.1  # STRATEGY_POLL_SECONDS's floor
HISTORY_BARS = 300


def strategy_symbols(instruments: Iterable[str]) -> tuple[str, ...]:
    """The Fib-RSI symbols the sandbox's ``INSTRUMENTS`` allow (a signal for another is refused)."""
    allowed = {name.upper() for name in instruments}
    return tuple(s for s in SYMBOLS if s in allowed)


def strategies_setting(instruments: Iterable[str]) -> str:
    """``STRATEGIES`` for the sandbox: ``fib-rsi:XAUUSD,EURUSD`` (empty without those symbols)."""
    symbols = strategy_symbols(instruments)
    return f"{STRATEGY}:{','.join(symbols)}" if symbols else ""


def demo_instruments(instruments: Iterable[str]) -> list[str]:
    """What the demo producer posts for: every instrument Fib-RSI does not trade."""
    return [name for name in instruments if name.upper() not in SYMBOLS]


def poll_seconds(bar_seconds: float) -> float:
    return max(MIN_POLL_SECONDS, round(bar_seconds / POLLS_PER_BAR, 3))


def source_of(producer: str | None) -> str:
    """How the page and the banner name a signal's producer."""
    if producer == PRODUCER:
        return "Fib-RSI"
    if producer == DEMO_PRODUCER:
        return "demo"
    return producer or "unknown"
