"""Issue 19 item 5: `tradebot run` refuses to start with one clear line and exit 2, before anything
starts (no database file is created, no migration runs), when the token is bad or empty, the HTTP
port is taken, or Telegram cannot be reached. Real subprocesses of the installed `tradebot`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.telegram import TOKEN

pytestmark = pytest.mark.slow

TRADEBOT = str(Path(sys.executable).parent / "tradebot")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    db = tmp_path / "tradebot.db"
    values = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "HTTP_", "TELEGRAM_"))},
        "DATABASE_URL": f"sqlite+aiosqlite:///{db}",
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": str(closed_port()),
        "TELEGRAM_API_URL": f"http://127.0.0.1:{closed_port()}",
        "LOG_LEVEL": "INFO",
        **env,
    }
    done = subprocess.run(
        [TRADEBOT, "run"], env=values, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    return done, db


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert "Traceback" not in lines[0]
    return lines[0]


@pytest.mark.parametrize(("token", "says"), [("abc", "not a Telegram bot token"), ("", "empty")])
def test_a_bad_or_empty_token_is_one_line_and_exit_2(tmp_path: Path, token: str, says: str) -> None:
    done, db = run(tmp_path, BOT_TOKEN=token)
    line = one_line(done)
    assert done.returncode == 2 and line.startswith("tradebot: BOT_TOKEN:") and says in line
    assert not db.exists()  # nothing started: not even the migrations


def test_a_busy_http_port_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done, db = run(tmp_path, BOT_TOKEN=TOKEN, HTTP_PORT=str(port))
    line = one_line(done)
    assert done.returncode == 2 and line.startswith("tradebot: HTTP_PORT:") and str(port) in line
    assert not db.exists()


def test_telegram_unreachable_is_one_line_and_exit_2(tmp_path: Path) -> None:
    done, db = run(tmp_path, BOT_TOKEN=TOKEN)
    line = one_line(done)
    assert done.returncode == 2 and "Telegram is unreachable" in line
    assert not db.exists()
