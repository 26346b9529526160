"""The MT5 terminal gateway: terminals on a Windows (or Wine) host, the engine anywhere.

``tradebot gateway serve`` runs ``engine.gateway.server`` next to the terminals; the engine
reaches it through ``engine.brokers.remote`` (a MetaTrader5-compatible module). The wire format,
the signature scheme and the allow-list both sides share are in ``engine.gateway.protocol``.
"""
