import asyncio
import io
import json

from loguru import logger

from engine.observability.logs import correlation, register_secret, setup_logging

TOKEN = "123456789:AAHfiqksKZ8WmR2zSjiQ7_v4TMAKdiHm9T0"


def _capture(json_lines=False):
    buf = io.StringIO()
    setup_logging("DEBUG", json_lines, stream=buf)
    return buf


def test_bot_token_and_registered_secrets_never_reach_the_log():
    buf = _capture()
    register_secret("producer-secret-value-xyz")
    register_secret("broker-pass-123")
    logger.info("calling https://api.example/bot{}/getMe", TOKEN)
    logger.bind(password="broker-pass-123", nested={"s": "producer-secret-value-xyz"}).info(
        "login with producer-secret-value-xyz"
    )
    try:
        raise RuntimeError(f"failed with token {TOKEN} and broker-pass-123")
    except RuntimeError:
        logger.exception("boom")
    out = buf.getvalue()
    assert TOKEN not in out and "AAHfiqksKZ8WmR2zSjiQ7" not in out
    assert "producer-secret-value-xyz" not in out
    assert "broker-pass-123" not in out
    assert out.count("***") >= 3


def test_json_lines_are_json_and_redacted_with_correlation_id():
    buf = _capture(json_lines=True)
    register_secret("another-secret-42")
    with correlation("req-1"):
        logger.bind(secret="another-secret-42").warning("hello another-secret-42")
    records = [json.loads(line) for line in buf.getvalue().splitlines()]
    assert records[-1]["cid"] == "req-1"
    assert records[-1]["msg"] == "hello ***"
    assert "another-secret-42" not in buf.getvalue()


async def test_correlation_id_follows_tasks():
    buf = _capture(json_lines=True)

    async def engine_work():
        await asyncio.sleep(0)
        logger.info("engine line")

    async def handle(cid):
        with correlation(cid):
            await asyncio.create_task(engine_work())

    await asyncio.gather(handle("a"), handle("b"))
    cids = sorted(json.loads(line)["cid"] for line in buf.getvalue().splitlines())
    assert cids == ["a", "b"]
