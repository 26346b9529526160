"""Backtests: closed bars replayed through a strategy and the live order construction.

``engine.backtest.data`` reads bars, ``engine.backtest.specs`` gives symbol specs,
``engine.backtest.simulator`` replays, ``engine.backtest.report`` writes trades.csv, report.json
and equity.png. numpy/pandas/matplotlib are imported by those modules, not by this package.
"""
