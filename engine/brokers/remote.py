"""A MetaTrader5-compatible module that reaches terminals through ``tradebot gateway serve``.

``MT5_MODULE=engine.brokers.remote`` uses the gateway at ``MT5_GATEWAY_URL``; an account that
names another gateway (``--gateway NAME``, ``MT5_GATEWAYS=NAME=url,...``) uses
``engine.brokers.remote:gateways.NAME``. Both are ``GatewayClient`` objects with the package's
functions and constants, answering with the same named tuples (rebuilt from the gateway's
field names, attribute access as the package's) and the same ``None`` + ``last_error()``.

Synchronous, like the package: the broker calls it from the account's worker thread. State is
per thread (``MULTI_ACCOUNT = True``): each account's thread has its own HTTP connection and
gateway session, so the broker keeps one worker thread per account in the engine's process.

Transport failures look like the package's IPC failures, so the broker treats them as it
treats a terminal's: nothing reached the gateway -> ``(-10004, 'No IPC connection: ...')``; no
answer in time -> ``(-10005, 'IPC timeout: ...')``; an answer that fails verification ->
``(-10002, ...)``. An ``order_send`` that fails so is UNKNOWN to the broker, which looks the
client id up before anything else; it is never resent here. Read calls that hit a connection
the gateway has dropped are tried once more on a fresh one. After a failed connect, calls fail
fast (no network) until a jittered exponential backoff (0.1 s doubling to 5 s) lets one through.
"""

from __future__ import annotations

import http.client
import json
import random
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from engine.gateway.protocol import (
    CALL_PATH,
    CONSTANTS_PATH,
    SIGNATURE_HEADER,
    TRADING_FUNCTIONS,
    CodecError,
    decode,
    encode,
    is_constant_name,
    reply_mac,
    sign_headers,
)

if TYPE_CHECKING:
    from engine.settings import Settings

MULTI_ACCOUNT = True

RES_S_OK = 1
RES_E_INVALID_PARAMS = -2
RES_E_AUTH_FAILED = -6
RES_E_INTERNAL_FAIL = -10000
RES_E_INTERNAL_FAIL_SEND = -10001
RES_E_INTERNAL_FAIL_RECEIVE = -10002
RES_E_INTERNAL_FAIL_CONNECT = -10004
RES_E_INTERNAL_FAIL_TIMEOUT = -10005

# A little longer than the gateway's own limits, so its IPC-timeout answer arrives first.
CALL_SECONDS = {"initialize": 190.0, "login": 190.0, "order_send": 70.0}
DEFAULT_CALL_SECONDS = 35.0
IDLE_RECONNECT_SECONDS = 50.0  # the gateway keeps idle connections 75 s
BACKOFF_INITIAL, BACKOFF_MAX = 0.1, 5.0
_BOOL_FUNCTIONS = frozenset({"initialize", "login", "symbol_select"})


class GatewayConfigError(Exception):
    """The gateway is not configured (or configured wrong) on the engine's side."""


@dataclass(frozen=True)
class Endpoint:
    """How to reach one gateway."""

    name: str
    url: str
    token: str = field(repr=False)
    ca: str | None = None  # PEM file pinning the gateway's (self-signed) certificate

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise GatewayConfigError(
                f"gateway {self.name}: URL must be http(s)://host:port, not {self.url!r}"
            )


class _Transport(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class _Refused(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class _ThreadState(threading.local):
    def __init__(self) -> None:
        self.conn: http.client.HTTPConnection | None = None
        self.used_at = 0.0
        self.session: str | None = None
        self.error: tuple[int, str] = (RES_S_OK, "Success")
        self.next_attempt = 0.0
        self.backoff = BACKOFF_INITIAL


class GatewayClient:
    """One gateway, seen as the MetaTrader5 module."""

    MULTI_ACCOUNT = True

    def __init__(self, endpoint: Endpoint | None = None, *, name: str = "default") -> None:
        self._endpoint = endpoint
        self._name = name
        self._local = _ThreadState()
        self._constants: dict[str, int] | None = None
        self._ssl: ssl.SSLContext | None = None

    # ---- configuration and transport -------------------------------------------------------

    @property
    def endpoint(self) -> Endpoint:
        if self._endpoint is None:
            self._endpoint = endpoint_for(self._name)
        return self._endpoint

    def _connection(self, seconds: float) -> http.client.HTTPConnection:
        state, ep = self._local, self.endpoint
        if state.conn is not None and time.monotonic() - state.used_at > IDLE_RECONNECT_SECONDS:
            self._drop()
        if state.conn is None:
            now = time.monotonic()
            if now < state.next_attempt:
                raise _Transport(RES_E_INTERNAL_FAIL_CONNECT,
                                 f"No IPC connection: gateway {ep.name} unreachable, next attempt in "
                                 f"{state.next_attempt - now:.1f} s")  # fmt: skip
            parts = urlsplit(ep.url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
            conn: http.client.HTTPConnection
            if parts.scheme == "https":
                if self._ssl is None:
                    self._ssl = ssl.create_default_context(cafile=ep.ca)
                conn = http.client.HTTPSConnection(
                    parts.hostname or "", port, timeout=seconds, context=self._ssl
                )
            else:
                conn = http.client.HTTPConnection(parts.hostname or "", port, timeout=seconds)
            try:
                conn.connect()
            except (OSError, ssl.SSLError) as exc:
                conn.close()
                state.next_attempt = time.monotonic() + state.backoff * random.uniform(0.5, 1.0)
                state.backoff = min(BACKOFF_MAX, state.backoff * 2)
                raise _Transport(RES_E_INTERNAL_FAIL_CONNECT,
                                 f"No IPC connection: gateway {ep.name} unreachable ({exc})") from None  # fmt: skip
            if conn.sock is not None:  # one small request, one answer: never wait for Nagle
                conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            state.conn, state.backoff, state.next_attempt = conn, BACKOFF_INITIAL, 0.0
        assert state.conn is not None
        if state.conn.sock is not None:
            state.conn.sock.settimeout(seconds)
        return state.conn

    def _drop(self) -> None:
        conn, self._local.conn = self._local.conn, None
        if conn is not None:
            conn.close()

    def _exchange(self, path: str, payload: dict[str, Any], seconds: float, *, retry: bool) -> dict[str, Any]:
        """One signed request and its verified answer (the decoded JSON)."""
        ep = self.endpoint
        body = json.dumps(payload, separators=(",", ":")).encode()
        for attempt in (1, 2):
            fresh = self._local.conn is None
            conn = self._connection(seconds)
            headers = sign_headers(ep.token, "POST", path, body)
            headers["Content-Type"] = "application/json"
            try:
                conn.request("POST", path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
            except TimeoutError:
                self._drop()
                raise _Transport(RES_E_INTERNAL_FAIL_TIMEOUT,
                                 f"IPC timeout: no answer from gateway {ep.name} within {seconds:g} s") from None  # fmt: skip
            except (OSError, http.client.HTTPException) as exc:
                self._drop()
                if retry and not fresh and attempt == 1:
                    continue  # a kept-alive connection the gateway had closed: nothing was processed
                raise _Transport(RES_E_INTERNAL_FAIL_CONNECT,
                                 f"No IPC connection: gateway {ep.name} connection lost ({type(exc).__name__})") from None  # fmt: skip
            self._local.used_at = time.monotonic()
            if response.status != 200:
                raise _Refused(*_refusal(response.status, data, response.getheader("Retry-After")))
            expected = "v1=" + reply_mac(ep.token, headers["X-Gateway-Nonce"], data)
            if response.getheader(SIGNATURE_HEADER, "") != expected:
                self._drop()
                raise _Transport(
                    RES_E_INTERNAL_FAIL_RECEIVE, f"gateway {ep.name}: the answer failed verification"
                )
            try:
                doc = json.loads(data)
            except ValueError:
                raise _Transport(
                    RES_E_INTERNAL_FAIL_RECEIVE, f"gateway {ep.name}: the answer is not JSON"
                ) from None
            if not isinstance(doc, dict):
                raise _Transport(RES_E_INTERNAL_FAIL_RECEIVE, f"gateway {ep.name}: unexpected answer")
            return doc
        raise AssertionError("unreachable")

    def _call(self, func: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        state = self._local
        failed: Any = False if func in _BOOL_FUNCTIONS else None
        try:
            payload = {
                "session": state.session,
                "call": func,
                "args": [encode(a) for a in args],
                "kwargs": {k: encode(v) for k, v in kwargs.items() if v is not None},
            }
        except CodecError as exc:
            state.error = (RES_E_INVALID_PARAMS, f"Invalid arguments: {exc}")
            return failed
        seconds = CALL_SECONDS.get(func, DEFAULT_CALL_SECONDS)
        try:
            doc = self._exchange(CALL_PATH, payload, seconds, retry=func not in TRADING_FUNCTIONS)
            result = decode(doc.get("result"), records=True)
            code, message = doc.get("error") or (RES_E_INTERNAL_FAIL, "no error in the answer")
        except (_Transport, _Refused) as exc:
            state.error = (exc.code, exc.message)
            return failed
        except (CodecError, TypeError, ValueError) as exc:
            state.error = (RES_E_INTERNAL_FAIL_RECEIVE, f"gateway: unreadable answer ({exc})")
            return failed
        if "session" in doc:
            state.session = doc["session"]
        state.error = (int(code), str(message))
        return result

    # ---- the package's surface ----------------------------------------------------------------

    def initialize(self, path: str | None = None, **kwargs: Any) -> bool:
        if path is not None:
            kwargs["path"] = path
        return bool(self._call("initialize", (), kwargs))

    def login(self, login: int, password: str = "", server: str = "", timeout: int = 60000) -> bool:
        return bool(
            self._call("login", (login,), {"password": password, "server": server, "timeout": timeout})
        )

    def shutdown(self) -> None:
        if self._local.session is not None:
            self._call("shutdown", (), {})
        self._local.session = None
        self._drop()

    def last_error(self) -> tuple[int, str]:
        return self._local.error

    def account_info(self) -> Any:
        return self._call("account_info", (), {})

    def terminal_info(self) -> Any:
        return self._call("terminal_info", (), {})

    def symbol_info(self, symbol: str) -> Any:
        return self._call("symbol_info", (symbol,), {})

    def symbol_info_tick(self, symbol: str) -> Any:
        return self._call("symbol_info_tick", (symbol,), {})

    def symbol_select(self, symbol: str, enable: bool = True) -> bool:
        return bool(self._call("symbol_select", (symbol, enable), {}))

    def order_check(self, request: dict[str, Any]) -> Any:
        return self._call("order_check", (request,), {})

    def order_send(self, request: dict[str, Any]) -> Any:
        return self._call("order_send", (request,), {})

    def positions_get(self, **kwargs: Any) -> Any:
        return self._call("positions_get", (), kwargs)

    def orders_get(self, **kwargs: Any) -> Any:
        return self._call("orders_get", (), kwargs)

    def history_orders_get(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("history_orders_get", args, kwargs)

    def history_deals_get(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("history_deals_get", args, kwargs)

    def constants(self) -> dict[str, int]:
        """The gateway module's allowed constants (fetched once per client)."""
        if self._constants is None:
            doc = self._exchange(CONSTANTS_PATH, {}, DEFAULT_CALL_SECONDS, retry=True)
            values = doc.get("constants")
            if not isinstance(values, dict):
                raise _Transport(RES_E_INTERNAL_FAIL_RECEIVE, "gateway: no constants in the answer")
            self._constants = {str(k): int(v) for k, v in values.items() if is_constant_name(str(k))}
        return self._constants

    def __getattr__(self, name: str) -> int:
        if name.startswith("_") or not is_constant_name(name):
            raise AttributeError(name)
        try:
            table = self.constants()
        except (_Transport, _Refused) as exc:  # the broker then uses its numeric fallbacks
            raise AttributeError(f"{name}: {exc}") from None
        if name not in table:
            raise AttributeError(name)
        return table[name]


def _refusal(status: int, data: bytes, retry_after: str | None) -> tuple[int, str]:
    try:
        detail = str(json.loads(data).get("detail", ""))[:200]
    except (ValueError, AttributeError):
        detail = ""
    if status == 401:
        return RES_E_AUTH_FAILED, f"gateway authorization failed: {detail}"
    if status == 429:
        return RES_E_INTERNAL_FAIL_SEND, f"gateway rate limit: retry after {retry_after or '?'} s"
    if status >= 500:
        return RES_E_INTERNAL_FAIL, f"gateway error {status}: {detail}"
    return RES_E_INVALID_PARAMS, f"gateway refused the call ({status}): {detail}"


# ---- configuration: which gateways exist -----------------------------------------------------

_endpoints: dict[str, Endpoint] = {}
_clients: dict[str, GatewayClient] = {}
_config_lock = threading.Lock()


def configure(endpoints: dict[str, Endpoint]) -> None:
    """The engine's gateways by name (``default`` is ``MT5_GATEWAY_URL``); resets clients."""
    with _config_lock:
        _endpoints.clear()
        _endpoints.update(endpoints)
        _clients.clear()


def endpoints_from_settings(settings: Settings) -> dict[str, Endpoint]:
    """``default`` from MT5_GATEWAY_URL, the others from MT5_GATEWAYS; tokens per name or shared."""
    urls = dict(settings.mt5_gateways)
    if settings.mt5_gateway_url:
        urls["default"] = settings.mt5_gateway_url
    shared = settings.mt5_gateway_token.get_secret_value() if settings.mt5_gateway_token else ""
    out = {}
    for name, url in urls.items():
        token = settings.mt5_gateway_tokens.get(name)
        out[name] = Endpoint(
            name, url, token.get_secret_value() if token else shared, settings.mt5_gateway_ca
        )
    return out


def configure_from_settings(settings: Settings) -> None:
    """The composition root's call: the gateways of these settings (nothing when none is set)."""
    endpoints = endpoints_from_settings(settings)
    if endpoints:
        configure(endpoints)


def module_for(default_module: str, gateway: str | None) -> str:
    """The ``MT5_MODULE`` string of an account: the setting, or the client of its named gateway."""
    return default_module if gateway is None else f"{__name__}:gateways.{gateway}"


def endpoint_for(name: str) -> Endpoint:
    with _config_lock:
        if not _endpoints:  # used outside the composition root (e.g. MT5_MODULE in a child process)
            from engine.settings import load_settings

            _endpoints.update(endpoints_from_settings(load_settings()))
        found = _endpoints.get(name)
    if found is None:
        raise GatewayConfigError(f"no MT5 gateway named {name!r} (MT5_GATEWAY_URL / MT5_GATEWAYS)")
    return found


def client(name: str) -> GatewayClient:
    with _config_lock:
        found = _clients.get(name)
        if found is None:
            found = _clients[name] = GatewayClient(name=name)
    return found


class _Gateways:
    """``engine.brokers.remote:gateways.NAME``: the client of gateway NAME."""

    def __getattr__(self, name: str) -> GatewayClient:
        if name.startswith("_"):
            raise AttributeError(name)
        return client(name)


gateways = _Gateways()


def _default() -> GatewayClient:
    return client("default")


# The module itself is the default gateway's client (MT5_MODULE=engine.brokers.remote).
def initialize(path: str | None = None, **kwargs: Any) -> bool:
    return _default().initialize(path, **kwargs)


def login(login: int, password: str = "", server: str = "", timeout: int = 60000) -> bool:
    return _default().login(login, password=password, server=server, timeout=timeout)


def shutdown() -> None:
    _default().shutdown()


def last_error() -> tuple[int, str]:
    return _default().last_error()


def _forward(func: str) -> Any:
    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(_default(), func)(*args, **kwargs)

    call.__name__ = func
    return call


account_info = _forward("account_info")
terminal_info = _forward("terminal_info")
symbol_info = _forward("symbol_info")
symbol_info_tick = _forward("symbol_info_tick")
symbol_select = _forward("symbol_select")
order_check = _forward("order_check")
order_send = _forward("order_send")
positions_get = _forward("positions_get")
orders_get = _forward("orders_get")
history_orders_get = _forward("history_orders_get")
history_deals_get = _forward("history_deals_get")


def __getattr__(name: str) -> int:
    """Module constants (``mt5.ORDER_TYPE_BUY``...) come from the default gateway."""
    if not is_constant_name(name):
        raise AttributeError(name)
    return getattr(_default(), name)  # type: ignore[no-any-return]
