import os
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from engine.settings import Settings, SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_defaults_match_contract():
    s = load_settings()
    assert s.drawdown_cap_percent == Decimal(20)
    assert s.soft_drawdown_percent == Decimal(10)
    assert s.heartbeat_seconds == Decimal(10)
    assert s.min_rr == Decimal("1.5")
    assert s.min_stop_points == 5
    assert s.order_expiry_hours == 100
    assert s.database_url.startswith("sqlite+aiosqlite:///")
    assert s.broker == "paper"
    assert s.mt5_module == "MetaTrader5"
    assert s.telegram_mode == "polling"


@pytest.mark.parametrize(
    ("env", "value", "needle"),
    [
        ("DRAWDOWN_CAP_PERCENT", "0", "DRAWDOWN_CAP_PERCENT"),
        ("DRAWDOWN_CAP_PERCENT", "100", "less than or equal to 99"),
        ("HTTP_PORT", "70000", "HTTP_PORT"),
        ("ADMIN_IDS", "12,abc", "ADMIN_IDS"),
        ("DATABASE_URL", "mysql://x", "DATABASE_URL: must be a sqlite:// or postgresql:// URL"),
        ("SECRET_KEY", "short", "SECRET_KEY: must be at least 32 characters"),
        ("TELEGRAM_MODE", "carrier-pigeon", "TELEGRAM_MODE"),
        ("MIN_RR", "-1", "MIN_RR"),
    ],
)
def test_bad_value_is_one_line_naming_the_setting(monkeypatch, env, value, needle):
    monkeypatch.setenv(env, value)
    with pytest.raises(SettingsError) as err:
        load_settings()
    message = str(err.value)
    assert "\n" not in message
    assert needle in message
    assert message.startswith(env) or env in message


def test_cross_field_rules(monkeypatch):
    monkeypatch.setenv("TELEGRAM_MODE", "webhook")
    with pytest.raises(SettingsError, match="WEBHOOK_URL is required"):
        load_settings()


def test_lists_and_urls_are_normalised(monkeypatch):
    monkeypatch.setenv("ADMIN_IDS", "1, 2,3")
    monkeypatch.setenv("INSTRUMENTS", "eurusd,xauusd")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@h/db")
    s = load_settings()
    assert s.admin_ids == [1, 2, 3]
    assert s.instruments == ["EURUSD", "XAUUSD"]
    assert s.database_url == "postgresql+asyncpg://u@h/db"


def test_require_names_the_missing_setting():
    with pytest.raises(SettingsError, match=r"^BOT_TOKEN: required"):
        load_settings().require("BOT_TOKEN")


def test_env_example_lists_every_setting():
    text = (ROOT / ".env.example").read_text()
    listed = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", text, flags=re.M))
    expected = {name.upper() for name in Settings.model_fields}
    assert expected - listed == set(), "missing from .env.example"
    assert listed - expected == set(), "unknown names in .env.example"


def test_cli_bad_setting_exits_2_with_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if k.upper() not in {n.upper() for n in Settings.model_fields}}
    env["DRAWDOWN_CAP_PERCENT"] = "150"
    proc = subprocess.run(
        [sys.executable, "-m", "tradebot.cli", "migrate"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == [
        "tradebot: configuration error: DRAWDOWN_CAP_PERCENT: Input should be less than or equal to 99"
    ]
    assert "Traceback" not in proc.stderr


def test_cli_help_and_migrate(tmp_path):
    env = {k: v for k, v in os.environ.items() if k.upper() not in {n.upper() for n in Settings.model_fields}}
    help_ = subprocess.run(
        [sys.executable, "-m", "tradebot.cli", "--help"], env=env, capture_output=True, text=True
    )
    assert help_.returncode == 0 and "migrate" in help_.stdout
    proc = subprocess.run(
        [sys.executable, "-m", "tradebot.cli", "migrate"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "data" / "tradebot.db").exists()
