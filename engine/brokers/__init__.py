"""Brokers behind one async interface: paper and MT5 (any MetaTrader5-compatible module), the
registry that makes one per account, and the price sources of paper accounts."""
