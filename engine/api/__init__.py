"""The engine's HTTP API: producer webhook, health, readiness, metrics (see ``app.py``)."""

from engine.api.app import CTX, ApiContext, build_http_app
from engine.api.server import start_http_server

__all__ = ["CTX", "ApiContext", "build_http_app", "start_http_server"]
