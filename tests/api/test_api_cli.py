"""tradebot producer add/list/disable and tradebot signal send, against a live server."""

from __future__ import annotations

import json
import re

from typer.testing import CliRunner

from engine.store.models import Signal
from tests.support.api_world import SECRET_KEY, LiveServer, good_body
from tests.support.queries import count
from tradebot.cli import app

runner = CliRunner()


def _env(url: str, **extra: str) -> dict[str, str]:
    env = {
        "DATABASE_URL": url,
        "SECRET_KEY": SECRET_KEY,
        "INSTRUMENTS": "EURUSD,XAUUSD,USDJPY",
        "LOG_LEVEL": "WARNING",
    }
    env.update(extra)
    return env


def _add(url: str, name: str) -> dict[str, str]:
    result = runner.invoke(app, ["producer", "add", name], env=_env(url))
    assert result.exit_code == 0, result.output
    fields = dict(re.findall(r"^(id|name|secret|token):\s+(\S+)$", result.output, flags=re.M))
    assert set(fields) == {"id", "name", "secret", "token"}
    return fields


def test_producer_add_requires_secret_key(sqlite_url):
    result = runner.invoke(app, ["producer", "add", "x"], env={**_env(sqlite_url), "SECRET_KEY": None})
    assert result.exit_code == 2
    assert "SECRET_KEY: required to create a producer" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_producer_add_list_disable_and_signal_send(sqlite_url):
    made = _add(sqlite_url, "cli-strategy")
    dup = runner.invoke(app, ["producer", "add", "cli-strategy"], env=_env(sqlite_url))
    assert dup.exit_code == 2 and "already exists" in dup.output  # a usage mistake: exit 2

    listed = runner.invoke(app, ["producer", "list"], env=_env(sqlite_url))
    assert listed.exit_code == 0
    assert made["id"] in listed.output and "active" in listed.output and "10/s burst 20" in listed.output
    assert made["secret"] not in listed.output and made["token"] not in listed.output

    with LiveServer(sqlite_url, producer_cache_seconds=0) as server:
        body = json.dumps(good_body(id="cli-1"))
        args = [
            "signal",
            "send",
            body,
            "--url",
            server.url,
            "--producer-id",
            made["id"],
            "--secret",
            made["secret"],
        ]
        sent = runner.invoke(app, args, env=_env(sqlite_url))
        assert sent.exit_code == 0, sent.output
        status, answer = sent.output.split("\n", 1)
        assert status == "201" and json.loads(answer)["status"] == "accepted"

        # body from stdin, credentials from the environment, an explicit idempotency key
        env = _env(sqlite_url, TRADEBOT_PRODUCER_ID=made["id"], TRADEBOT_PRODUCER_SECRET=made["secret"])
        piped = runner.invoke(
            app,
            ["signal", "send", "--url", server.url, "--idempotency-key", "k-9"],
            input=json.dumps(good_body()),
            env=env,
        )
        assert piped.exit_code == 0 and piped.output.startswith("201")
        again = runner.invoke(
            app,
            ["signal", "send", "-", "--url", server.url, "--idempotency-key", "k-9"],
            input=json.dumps(good_body()),
            env=env,
        )
        assert again.exit_code == 0 and again.output.startswith("200")

        bad = runner.invoke(app, ["signal", "send", '{"instrument": "EURUSD"}', "--url", server.url], env=env)
        assert bad.exit_code == 1 and bad.output.startswith("422")
        assert '"field": "side"' in bad.output

        wrong = runner.invoke(
            app,
            [*args[:3], "--url", server.url, "--producer-id", made["id"], "--secret", "nope"],
            env=_env(sqlite_url),
        )
        assert wrong.exit_code == 1 and wrong.output.startswith("401")

        disabled = runner.invoke(app, ["producer", "disable", made["id"]], env=_env(sqlite_url))
        assert disabled.exit_code == 0 and "disabled" in disabled.output
        refused = runner.invoke(
            app, ["signal", "send", json.dumps(good_body(id="cli-2")), "--url", server.url], env=env
        )
        assert refused.exit_code == 1 and refused.output.startswith("403")

        assert server.call(count(server.ctx.db, Signal)) == 2

    listed = runner.invoke(app, ["producer", "list"], env=_env(sqlite_url))
    assert re.search(rf"{made['id']}\s+disabled", listed.output)
    missing = runner.invoke(app, ["producer", "disable", "no-such-id"], env=_env(sqlite_url))
    assert missing.exit_code == 1 and "no producer" in missing.output


def test_signal_send_needs_credentials_and_a_reachable_server(sqlite_url):
    result = runner.invoke(app, ["signal", "send", "{}", "--url", "http://127.0.0.1:9"], env=_env(sqlite_url))
    assert result.exit_code == 2 and "--producer-id" in result.output
    unreachable = runner.invoke(
        app,
        ["signal", "send", "{}", "--url", "http://127.0.0.1:9", "--producer-id", "p", "--secret", "s"],
        env=_env(sqlite_url),
    )
    assert unreachable.exit_code == 1 and "cannot reach" in unreachable.output


def test_producer_list_migrates_a_fresh_database(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
    result = runner.invoke(app, ["producer", "list"], env={**_env(url), "SECRET_KEY": None})
    assert result.exit_code == 0 and "no producers" in result.output
