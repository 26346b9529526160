"""Prometheus metrics, on a registry per ``Metrics`` instance (never the global one).

The composition root builds one ``Metrics`` and hands it to every part that records something;
tests build as many as they like. Add new metric objects to this class (one place to read them
all) and keep label values bounded: route templates, never raw paths or ids.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry

        # HTTP server
        self.http_requests = Counter(
            "tradebot_http_requests_total",
            "HTTP requests answered, by route template, method and status.",
            ["route", "method", "status"],
            registry=r,
        )
        self.http_latency = Histogram(
            "tradebot_http_request_seconds",
            "Time to answer an HTTP request, by route template.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.http_connections_closed = Counter(
            "tradebot_http_connections_closed_total",
            "Connections the server closed on its own: header_timeout, too_many_connections.",
            ["reason"],
            registry=r,
        )

        # Producer webhook
        self.ingest_latency = Histogram(
            "tradebot_signal_ingest_seconds",
            "Time to answer a signal delivery (auth, validation, commit), any outcome.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.signals_accepted = Counter(
            "tradebot_signals_accepted_total", "Signals stored as new.", registry=r
        )
        self.signals_replayed = Counter(
            "tradebot_signals_replayed_total",
            "Deliveries answered with an already stored signal (idempotent replay).",
            registry=r,
        )
        self.signals_refused = Counter(
            "tradebot_signals_refused_total",
            "Signal deliveries refused, by reason code.",
            ["reason"],
            registry=r,
        )

        self.unauthenticated_refused = Counter(
            "tradebot_unauthenticated_refused_total",
            "Requests to the producer API refused before the caller was authenticated, by reason "
            "(audited in aggregate: one line per source and minute).",
            ["reason"],
            registry=r,
        )

        # Outbound events
        self.outbound_attempts = Counter(
            "tradebot_outbound_attempts_total",
            "Outbound event POSTs, by outcome (delivered, retry, dead).",
            ["outcome"],
            registry=r,
        )
        self.outbound_pending = Gauge(
            "tradebot_outbound_pending",
            "Outbound deliveries waiting to be sent (as of the dispatcher's last pass).",
            registry=r,
        )

        # Built-in strategies (engine.strategies.producer)
        self.strategy_setups = Counter(
            "tradebot_strategy_setups_total",
            "Setups a strategy emitted and posted as signals, by symbol and side.",
            ["symbol", "side"],
            registry=r,
        )
        self.strategy_refused = Counter(
            "tradebot_strategy_refused_total",
            "Setups not posted: the limit moved beyond the market would cross its stop, or the server refused it.",
            ["symbol", "reason"],
            registry=r,
        )
        self.strategy_evaluation = Histogram(
            "tradebot_strategy_evaluation_seconds",
            "Time to read the new closed bars of one symbol and evaluate the strategy on them.",
            ["strategy"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )

        # Readiness
        self.ready = Gauge(
            "tradebot_ready_check",
            "Result of each readiness check at the last /readyz (1 ok, 0 failing).",
            ["check"],
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
