"""Only signed, fresh, never-seen requests for allow-listed functions reach a terminal."""

from __future__ import annotations

import io
import json
import ssl
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from engine.brokers import remote
from engine.brokers.base import BrokerError
from engine.brokers.mt5 import create_mt5_broker
from engine.gateway.protocol import CALL_PATH, CONSTANTS_PATH, encode, sign_headers
from engine.observability.logs import setup_logging
from mt5sim import control
from tests.support.gateway import LOGIN, PASSWORD, SERVER, TOKEN, GatewayThread, Tls


class Raw:
    """Hand-made requests to a gateway, to send what a well-behaved client never would."""

    def __init__(self, gw: GatewayThread, http: aiohttp.ClientSession) -> None:
        self.gw, self.http = gw, http
        assert gw.tls is not None
        self.ssl = ssl.create_default_context(cafile=str(gw.tls.cert))

    async def post(
        self, path: str, doc: dict[str, Any], *, token: str = TOKEN, t: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any], dict[str, str]]:  # fmt: skip
        body = json.dumps(doc).encode()
        sent = headers if headers is not None else sign_headers(token, "POST", path, body, t=t)
        async with self.http.post(self.gw.url + path, data=body, headers=sent, ssl=self.ssl) as resp:
            return resp.status, json.loads(await resp.read()), sent

    async def call(self, func: str, *args: Any, session: str | None = None, **kwargs: Any) -> Any:
        doc = {"session": session, "call": func, "args": [encode(a) for a in args],
               "kwargs": {k: encode(v) for k, v in kwargs.items()}}  # fmt: skip
        return await self.post(CALL_PATH, doc)


@pytest.fixture
async def raw(sim: Path, gateway: GatewayThread) -> Any:
    async with aiohttp.ClientSession() as http:
        yield Raw(gateway, http)


def _initialize() -> dict[str, Any]:
    return {"session": None, "call": "initialize", "args": [],
            "kwargs": {"login": LOGIN, "password": PASSWORD, "server": SERVER}}  # fmt: skip


async def test_wrong_token_expired_timestamp_and_unsigned_requests_are_refused(raw: Raw, sim: Path) -> None:
    status, doc, _ = await raw.post(CALL_PATH, _initialize(), token="not-the-gateway-token-" + "x" * 20)
    assert (status, doc["type"]) == (401, "urn:tradebot:problem:bad_signature")
    status, doc, _ = await raw.post(CALL_PATH, _initialize(), t=int(time.time()) - 120)
    assert (status, doc["type"]) == (401, "urn:tradebot:problem:stale")
    status, doc, _ = await raw.post(CALL_PATH, _initialize(), headers={"Content-Type": "application/json"})
    assert (status, doc["type"]) == (401, "urn:tradebot:problem:unsigned")
    assert control.stats(LOGIN, state=sim).get("initialize_calls", 0) == 0  # no terminal saw any of them
    status, doc, _ = await raw.post(CALL_PATH, _initialize())
    assert status == 200 and doc["result"] is True and doc["session"]


async def test_a_replayed_order_send_is_refused_and_executes_once(raw: Raw, sim: Path) -> None:
    _, opened, _ = await raw.post(CALL_PATH, _initialize())
    request = {"action": 1, "symbol": "EURUSD", "volume": 0.1, "type": 0, "price": 1.10008,
               "type_filling": 1, "magic": 7, "comment": "tb-replay-1"}  # fmt: skip
    doc = {"session": opened["session"], "call": "order_send", "args": [encode(request)], "kwargs": {}}
    status, first, headers = await raw.post(CALL_PATH, doc)
    assert status == 200 and first["result"]["v"][0] == 10009
    status, again, _ = await raw.post(CALL_PATH, doc, headers=headers)  # the same bytes, the same headers
    assert (status, again["type"]) == (401, "urn:tradebot:problem:replayed")
    assert control.stats(LOGIN, state=sim)["order_send_calls"] == 1
    assert len(control.dump(state=sim)["positions"]) == 1


@pytest.mark.parametrize(
    "func", ["eval", "__import__", "copy_rates_from_pos", "control.set_price", "order_send "]
)
async def test_a_function_outside_the_allow_list_is_refused(raw: Raw, func: str) -> None:
    _, opened, _ = await raw.post(CALL_PATH, _initialize())
    status, doc, _ = await raw.call(func, "EURUSD", session=opened["session"])
    assert (status, doc["type"]) == (403, "urn:tradebot:problem:not_allowed")


async def test_constants_are_the_allowed_integers_only(raw: Raw) -> None:
    status, doc, _ = await raw.post(CONSTANTS_PATH, {})
    assert status == 200
    constants = doc["constants"]
    assert constants["ORDER_TYPE_BUY"] == 0 and constants["TRADE_RETCODE_DONE"] == 10009
    assert constants["TRADE_ACTION_DEAL"] == 1 and constants["ORDER_FILLING_IOC"] == 1
    assert all(isinstance(v, int) for v in constants.values())
    assert not {"MULTI_ACCOUNT", "current_terminal", "__version__", "ACCOUNT_TRADE_MODE_DEMO"} & set(
        constants
    )


async def test_records_and_dicts_from_a_client_are_refused_and_paths_are_the_gateways(raw: Raw) -> None:
    _, opened, _ = await raw.post(CALL_PATH, _initialize())
    forged = {"$nt": "TradeRequest", "f": ["action"], "v": [1]}
    status, doc, _ = await raw.post(
        CALL_PATH, {"session": opened["session"], "call": "order_send", "args": [forged]}
    )
    assert (status, doc["type"]) == (400, "urn:tradebot:problem:bad_value")
    status, doc, _ = await raw.call(
        "initialize", login=LOGIN, password=PASSWORD, path="C:/evil/terminal64.exe"
    )
    assert status == 200 and doc["result"] is False and "set on the gateway host" in doc["error"][1]
    status, doc, _ = await raw.call("account_info", session="no-such-session")
    assert status == 200 and doc["result"] is None and doc["error"][0] == -10004


async def test_rate_limit_per_client(sim: Path, gateway_tls: Tls) -> None:
    gw = GatewayThread(gateway_tls, burst=3, rate_per_second=1).start()  # type: ignore[arg-type]
    try:
        async with aiohttp.ClientSession() as http:
            raw = Raw(gw, http)
            statuses = [(await raw.post(CONSTANTS_PATH, {}))[0] for _ in range(5)]
    finally:
        gw.stop()
    assert statuses[:3] == [200, 200, 200] and statuses[3:] == [429, 429]


async def test_the_client_pins_the_certificate_and_a_wrong_token_is_an_auth_failure(
    sim: Path, gateway: GatewayThread, tmp_path: Path
) -> None:
    stranger = Tls.make(tmp_path / "stranger")
    remote.configure({"default": remote.Endpoint("default", gateway.url, TOKEN, str(stranger.cert))})
    client = remote.client("default")
    assert client.initialize(login=LOGIN, password=PASSWORD, server=SERVER) is False
    code, message = client.last_error()
    assert code == -10004 and "CERTIFICATE_VERIFY_FAILED" in message

    remote.configure({"default": remote.Endpoint("default", gateway.url, "w" * 40, str(gateway.tls.cert))})  # type: ignore[union-attr]
    broker = create_mt5_broker("engine.brokers.remote", LOGIN, PASSWORD, SERVER, backoff_initial=0.01)
    with pytest.raises(BrokerError, match="authorization failed"):
        await broker.connect()
    await broker.close()
    assert control.stats(LOGIN, state=sim).get("initialize_calls", 0) == 0


async def test_no_token_or_password_in_either_sides_logs(sim: Path, gateway: GatewayThread) -> None:
    buf = io.StringIO()
    setup_logging("DEBUG", json_lines=True, stream=buf)
    try:
        broker = create_mt5_broker("engine.brokers.remote", LOGIN, PASSWORD, SERVER)
        await broker.connect()
        assert (await broker.account()).login == str(LOGIN)
        await broker.close()
        wrong = create_mt5_broker(
            "engine.brokers.remote", LOGIN, "wrong-" + PASSWORD, SERVER, connect_attempts=1
        )
        with pytest.raises(BrokerError):
            await wrong.connect()
        await wrong.close()
        async with aiohttp.ClientSession() as http:
            raw = Raw(gateway, http)
            assert (await raw.post(CALL_PATH, _initialize(), token="z" * 40))[0] == 401
            assert (await raw.call("eval", "1"))[0] == 403
    finally:
        setup_logging("INFO")
    logs = buf.getvalue()
    assert "session opened for login 6101" in logs and "refused POST /v1/call" in logs
    for secret in (TOKEN, PASSWORD, "z" * 40):
        assert secret not in logs
