"""Logging: loguru, human or JSON lines, a correlation id per request/update, secrets redacted.

Every secret the process handles (bot token, producer secrets and tokens, broker passwords,
the secret key) is registered with ``register_secret`` the moment it is loaded or decrypted;
the patcher replaces each of them, and anything shaped like a bot token, with ``***`` in the
message and in every extra field before any sink sees the record.

Heartbeat lines (logged with ``logger.bind(**HEARTBEAT_EXTRA)``) come every ``HEARTBEAT_SECONDS``;
on the human console they are shown at most once per ``CONSOLE_HEARTBEAT_SECONDS`` (every one at
``LOG_LEVEL=DEBUG``, and the final one always), so they do not bury the start-up banner. JSON
logs keep every one; metrics, ``/status`` and ``/readyz`` read the heartbeat from the store.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TextIO

from loguru import logger

if TYPE_CHECKING:
    from loguru import Record

correlation_id: ContextVar[str] = ContextVar("correlation_id", default="-")

_BOT_TOKEN_RE = re.compile(r"(?<![0-9])[0-9]{5,}:[A-Za-z0-9_-]{30,}")
_MASK = "***"
_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_pattern: re.Pattern[str] | None = None


def register_secret(value: str | None) -> None:
    """Never let ``value`` reach a log sink (ignored when empty or too short to be a secret)."""
    global _pattern
    if not value or len(value) < 6:
        return
    with _secrets_lock:
        if value in _secrets:
            return
        _secrets.add(value)
        ordered = sorted(_secrets, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(s) for s in ordered))


def redact(text: str) -> str:
    pattern = _pattern
    if pattern is not None:
        text = pattern.sub(_MASK, text)
    return _BOT_TOKEN_RE.sub(_MASK, text)


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(v) for v in value]
    return value


def _patch(record: Record) -> None:
    record["message"] = redact(record["message"])
    extra = record["extra"]
    for key in list(extra):
        extra[key] = _redact_value(extra[key])
    extra["cid"] = correlation_id.get()
    if record["exception"] is not None:
        extra["_exc_text"] = True


def new_correlation_id() -> str:
    return uuid.uuid4().hex[:16]


@contextmanager
def correlation(cid: str | None = None) -> Iterator[str]:
    """Run a block (an HTTP request, a Telegram update, a loop tick) under one correlation id."""
    token = correlation_id.set(cid or new_correlation_id())
    try:
        yield correlation_id.get()
    finally:
        correlation_id.reset(token)


HEARTBEAT_EXTRA = {"heartbeat": True}
CONSOLE_HEARTBEAT_SECONDS = 60.0


class _HeartbeatThrottle:
    """The human console's filter: one heartbeat line a minute (all of them at DEBUG or TRACE)."""

    def __init__(self, level: str, every: float = CONSOLE_HEARTBEAT_SECONDS) -> None:
        self._all = level.upper() in ("DEBUG", "TRACE")
        self._every = every
        self._last: float | None = None

    def __call__(self, record: Record) -> bool:
        extra = record["extra"]
        if self._all or not extra.get("heartbeat") or extra.get("final"):
            return True
        now = time.monotonic()
        if self._last is not None and now - self._last < self._every:
            return False
        self._last = now
        return True


def _json_sink(stream: TextIO) -> Any:
    def sink(message: Any) -> None:
        record = message.record
        payload: dict[str, Any] = {
            "ts": record["time"].isoformat(),
            "level": record["level"].name,
            "msg": record["message"],
            "cid": record["extra"].get("cid", "-"),
            "logger": record["name"],
        }
        extra = {k: v for k, v in record["extra"].items() if k not in ("cid", "_exc_text")}
        if extra:
            payload["extra"] = extra
        if record["exception"] is not None:
            import traceback

            exc = record["exception"]
            payload["exception"] = redact(
                "".join(traceback.format_exception(exc.type, exc.value, exc.traceback))
            )
        stream.write(json.dumps(payload, default=str) + "\n")
        stream.flush()

    return sink


_HUMAN_FORMAT = (
    "<green>{time:YYYY-MM-DD HH:mm:ss.SSS}</green> <level>{level: <7}</level> "
    "<cyan>{extra[cid]}</cyan> {name}: {message}"
)


def _human_sink(stream: TextIO) -> Any:
    # Exceptions are formatted by us so that their text passes through ``redact`` as well.
    def sink(message: Any) -> None:
        text = str(message)
        record = message.record
        if record["exception"] is not None:
            import traceback

            exc = record["exception"]
            text += redact("".join(traceback.format_exception(exc.type, exc.value, exc.traceback)))
        stream.write(text)
        stream.flush()

    return sink


def setup_logging(level: str = "INFO", json_lines: bool = False, stream: TextIO | None = None) -> None:
    """Configure the process-wide logger once at start-up (tests call it with their own stream)."""
    out = stream or sys.stderr
    logger.remove()
    logger.configure(patcher=_patch, extra={"cid": "-"})
    if json_lines:
        logger.add(_json_sink(out), level=level, backtrace=False, diagnose=False, catch=True)
    else:
        logger.add(
            _human_sink(out),
            level=level,
            format=lambda _record: _HUMAN_FORMAT + "\n",  # a callable: loguru adds no raw traceback
            filter=_HeartbeatThrottle(level),
            colorize=False,
            backtrace=False,
            diagnose=False,
            catch=True,
        )
    _route_stdlib_logging(level)


def _route_stdlib_logging(level: str) -> None:
    """Send aiogram/aiohttp/sqlalchemy stdlib logs through loguru so they are redacted too."""
    import logging

    class _Intercept(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            try:
                lvl: str | int = logger.level(record.levelname).name
            except ValueError:
                lvl = record.levelno
            logger.opt(depth=6, exception=record.exc_info).log(lvl, record.getMessage())

    logging.basicConfig(handlers=[_Intercept()], level=logging.getLevelName(level), force=True)
    for noisy in ("aiohttp.access", "sqlalchemy.engine", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
