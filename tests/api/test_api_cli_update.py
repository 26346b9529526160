"""``tradebot signal update ID '{"action": ...}'`` signs and sends an update like ``signal send``."""

from __future__ import annotations

import json
import re

from typer.testing import CliRunner

from tests.support.api_world import SECRET_KEY, LiveServer, good_body
from tradebot.cli import app

runner = CliRunner()


def _env(url: str, **extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": url,
        "SECRET_KEY": SECRET_KEY,
        "INSTRUMENTS": "EURUSD,XAUUSD,USDJPY",
        "LOG_LEVEL": "WARNING",
        **extra,
    }


def test_signal_update_signs_and_sends(sqlite_url):
    made = runner.invoke(app, ["producer", "add", "cli-updates"], env=_env(sqlite_url))
    assert made.exit_code == 0, made.output
    fields = dict(re.findall(r"^(id|secret):\s+(\S+)$", made.output, flags=re.M))
    env = _env(sqlite_url, TRADEBOT_PRODUCER_ID=fields["id"], TRADEBOT_PRODUCER_SECRET=fields["secret"])
    with LiveServer(sqlite_url, producer_cache_seconds=0) as server:
        sent = runner.invoke(
            app, ["signal", "send", json.dumps(good_body(id="cli-7")), "--url", server.url], env=env
        )
        assert sent.exit_code == 0, sent.output
        moved = runner.invoke(
            app,
            ["signal", "update", "cli-7", '{"action": "move_sl", "sl": "entry"}', "--url", server.url],
            env=env,
        )
        assert moved.exit_code == 0, moved.output
        status, answer = moved.output.split("\n", 1)
        assert status == "202" and json.loads(answer)["action"] == "move_sl"
        piped = runner.invoke(
            app,
            ["signal", "update", "cli-7", "--url", server.url, "--idempotency-key", "half-1"],
            input='{"action": "close", "percent": 50}',
            env=env,
        )
        assert piped.exit_code == 0 and piped.output.startswith("202")
        bad = runner.invoke(
            app,
            ["signal", "update", "cli-7", '{"action": "close", "percent": 0}', "--url", server.url],
            env=env,
        )
        assert bad.exit_code == 1 and bad.output.startswith("422") and '"field": "percent"' in bad.output
        missing = runner.invoke(
            app, ["signal", "update", "nope", '{"action": "cancel"}', "--url", server.url], env=env
        )
        assert missing.exit_code == 1 and missing.output.startswith("404")
    no_secret = runner.invoke(
        app, ["signal", "update", "cli-7", '{"action": "cancel"}'], env=_env(sqlite_url)
    )
    assert no_secret.exit_code == 2 and len(no_secret.output.strip().splitlines()) == 1
