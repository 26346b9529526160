"""``tradebot sandbox`` as a newcomer runs it: it starts, serves the page, a demo signal reaches the
subscribers, and Ctrl-C stops it cleanly (exit 0) even with the page's live stream open."""

from __future__ import annotations

import http.client
import urllib.request
from pathlib import Path

import pytest

from tests.support.sandbox_process import sandbox_process
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow


def test_sandbox_starts_serves_the_page_gets_a_signal_and_stops_on_sigint(tmp_path: Path) -> None:
    with sandbox_process(tmp_path, signal_every="60") as sandbox:
        assert f"{sandbox.url}/sandbox" in sandbox.banner
        assert "market open 24/7" in sandbox.banner
        assert "Fib-RSI:        XAUUSD, EURUSD" in sandbox.banner  # on the simulated terminal's bars

        with urllib.request.urlopen(sandbox.url + "/sandbox", timeout=5) as resp:
            page = resp.read().decode()
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/html")
        assert "tradebot sandbox" in page and "/sandbox/static/app.js" in page
        for asset in ("app.js", "render.js", "sidebar.js", "style.css"):
            with urllib.request.urlopen(f"{sandbox.url}/sandbox/static/{asset}", timeout=5) as resp:
                assert resp.status == 200

        # the demo producer's first signal comes within seconds (not after --signal-every), through
        # the webhook, and reaches a subscriber's chat
        signals = wait_for(
            lambda: sandbox.get("/sandbox/api/portfolio")["signals"], 6, "the first demo signal"
        )
        assert signals[0]["status"] in ("accepted", "dispatched")

        def signal_messages() -> list[dict[str, object]]:
            found = sandbox.get("/sandbox/api/chats/7000101/messages")
            return [m for m in found if "Approve" in str(m.get("reply_markup"))]

        assert wait_for(signal_messages, 10, "a signal with Approve in Ben's chat")
        assert (tmp_path / "data" / "sandbox.db").exists()
        assert (tmp_path / "data" / "sandbox.secret_key").exists()

        # a page is open (its live stream) when Ctrl-C comes
        stream = http.client.HTTPConnection("127.0.0.1", int(sandbox.url.rsplit(":", 1)[1]), timeout=10)
        stream.request("GET", "/sandbox/api/events")
        events = stream.getresponse()
        assert events.status == 200
        assert events.getheader("Content-Type") == "text/event-stream"

        status, output = sandbox.stop()
        stream.close()

    assert status == 0, sandbox.stderr[-3000:]
    assert "Sandbox stopped." in output
    assert "Traceback" not in sandbox.stderr
    assert "tradebot stopped" in sandbox.stderr
