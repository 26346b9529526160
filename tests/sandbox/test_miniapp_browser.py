"""The Mini App in Chromium, opened from the sandbox page as Telegram's client would open it: a
subscriber approves a demo signal there and the chat message changes too, then closes the position
there; the admin API refuses them; the dark theme; the admin's console. Everything stays on
loopback (the page loads the bundled telegram-web-app.js). Screenshots go to tests/artifacts/
(``MINIAPP_DOCS_SCREENSHOT=1`` also refreshes docs/miniapp.png for the README)."""

from __future__ import annotations

import json
import os
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import chromium, offline
from tests.support.sandbox_process import Running, sandbox_process

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
BEN, LUCIA, PRIYA, ADMIN = 7000101, 7000102, 7000103, 7000001
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with sandbox_process(tmp_path_factory.mktemp("sandbox-miniapp"), signal_every="4-6") as running:
        yield running
        status, _ = running.stop()
        assert status == 0, running.stderr[-3000:]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as instance:
        yield instance


@pytest.fixture
def page(browser: Any, sandbox: Running) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1440, "height": 900}, device_scale_factor=1)
    refused = offline(context)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(sandbox.url + "/sandbox")
    page.locator(f'.chat-item.active[data-chat-id="{BEN}"]').wait_for(timeout=10_000)
    yield page
    context.close()
    assert not errors, errors
    assert not refused, f"the page tried to reach the internet: {refused}"


def open_app(page: Any, user_id: int) -> Any:
    """Pick the user's chat and tap the menu button: the Mini App in the phone frame."""
    page.locator(f'.chat-item[data-chat-id="{user_id}"]').click()
    page.locator("#composer-app").click()
    page.locator("#phone-frame").wait_for(timeout=10_000)
    return page.frame_locator("#phone-frame")


def frame_of(page: Any) -> Any:
    return page.locator("#phone-frame").element_handle().content_frame()


def launch_url(sandbox: Running, user_id: int, theme: str = "light") -> str:
    request = urllib.request.Request(
        sandbox.url + "/sandbox/api/webapp",
        data=json.dumps({"user_id": user_id, "theme": theme}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        return str(json.loads(resp.read())["url"])


ADMIN_PROBE = """async () => {
  const session = await fetch("/app/api/session", {method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({init_data: Telegram.WebApp.initData})}).then((r) => r.json());
  const r = await fetch("/app/api/admin/status", {headers: {Authorization: "Bearer " + session.token}});
  return {status: r.status, type: r.headers.get("content-type"), body: await r.json(), admin: session.user.is_admin};
}"""


def test_approve_in_the_mini_app_then_close_the_position_there(page: Any) -> None:
    from playwright.sync_api import expect

    app = open_app(page, BEN)
    expect(app.locator("#live")).to_contain_text("Live", timeout=10_000)
    expect(app.locator('.tab[data-tab="admin"]')).to_have_count(0)  # Ben is no admin
    # a market signal (limit orders rest at the broker instead of filling), pushed as it arrives
    card = app.locator(".signal-card", has_text="· market").first
    expect(card).to_be_visible(timeout=25_000)
    symbol = card.locator(".card-title").inner_text().split()[1]
    signal_id = card.get_attribute("data-signal-id")
    expect(card.locator(".countdown")).to_have_text(re.compile(r"^\d+:\d\d$"))
    card.locator("button.approve").click()
    expect(app.locator("#toast")).to_contain_text("Approved", timeout=10_000)
    expect(app.locator(f'.signal-card[data-signal-id="{signal_id}"]')).to_have_count(0)

    # the non-admin asks the admin API from the page: 403 with a problem body
    probe = frame_of(page).evaluate(ADMIN_PROBE)
    assert probe["status"] == 403 and probe["type"].startswith("application/problem+json")
    assert probe["body"]["type"] == "urn:tradebot:problem:forbidden" and probe["admin"] is False

    # the chat message changed too: Approve/Reject gone, the approval and the fill shown, and the
    # filled position's controls under it (replies to it, e.g. a target's, quote it: the first row)
    page.locator("#phone-close").click()
    messages = page.locator("#messages")
    # (this module's sandbox is shared: an earlier test may have approved another signal)
    decided = messages.locator(".msg-row", has_text="Approved at").filter(has_text=f" {symbol} ").first
    expect(decided).to_contain_text(symbol, timeout=15_000)
    expect(decided).to_contain_text("Filled:", timeout=15_000)
    expect(decided.locator(".kbd-btn")).to_have_text(["Close", "Close 50 %", "Stop → entry"])
    ben = page.locator(".account", has=page.locator(".account-owner", has_text="Ben Carter"))
    # a multi-target signal opens a position per target leg (hedging): any of them
    expect(ben.locator(f'.position[data-symbol="{symbol}"]').first).to_be_visible(timeout=10_000)

    # Positions: live P/L, then Close with its confirmation
    app = open_app(page, BEN)
    app.locator('.tab[data-tab="positions"]').click()
    legs = app.locator(f'.position-card[data-symbol="{symbol}"]')
    expect(legs.first).to_be_visible(timeout=10_000)
    position_id = legs.first.get_attribute("data-position-id")  # one leg, followed by its id
    position = app.locator(f'.position-card[data-position-id="{position_id}"]')
    open_legs = legs.count()
    expect(position.locator(".pnl")).to_have_text(re.compile(r"^[+-]?[\d,.]+ USD$"))
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "miniapp-in-sandbox.png"))
    position.locator('[data-action="close"]').click()
    expect(app.locator("#confirm-text")).to_contain_text(f"Close {symbol}")
    app.locator("#confirm-ok").click()
    expect(app.locator("#toast")).to_contain_text("Sent", timeout=10_000)
    expect(position).to_have_count(0, timeout=15_000)
    page.locator("#phone-close").click()  # the sandbox page shows one leg fewer
    expect(ben.locator(f'.position[data-symbol="{symbol}"]')).to_have_count(open_legs - 1, timeout=10_000)


def test_the_dark_theme_renders_in_the_users_language(page: Any) -> None:
    from playwright.sync_api import expect

    app = open_app(page, LUCIA)  # Lucía's Telegram speaks Spanish
    expect(app.locator('.tab[data-tab="signals"]')).to_contain_text("Señales", timeout=10_000)
    light = frame_of(page).evaluate("getComputedStyle(document.body).backgroundColor")
    page.locator("#phone-theme").click()  # reopen in Telegram's dark theme
    app = page.frame_locator("#phone-frame")
    expect(app.locator(".tab.active")).to_have_count(1, timeout=10_000)
    expect(app.locator('.tab[data-tab="positions"]')).to_have_text("Posiciones")
    frame = frame_of(page)
    assert frame.evaluate("Telegram.WebApp.colorScheme") == "dark"
    assert frame.evaluate("document.documentElement.dataset.scheme") == "dark"
    assert frame.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(15, 15, 15)"
    assert frame.evaluate("getComputedStyle(document.body).color") == "rgb(255, 255, 255)"
    assert light == "rgb(244, 244, 245)"
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator(".phone").screenshot(path=str(ARTIFACTS / "miniapp-dark.png"))


def test_the_admin_sees_the_engine_and_pauses_with_confirmation(page: Any) -> None:
    from playwright.sync_api import expect

    app = open_app(page, ADMIN)
    app.locator('.tab[data-tab="admin"]').click()
    engine = app.locator(".engine-card")
    expect(engine).to_contain_text("Running", timeout=10_000)
    expect(app.locator(".admin-account")).to_have_count(4)  # the three subscribers and the admin
    app.locator("#admin-pause").click()
    app.locator("#confirm-cancel").click()  # cancelled: nothing happens
    expect(engine).to_contain_text("Running")
    app.locator("#admin-pause").click()
    app.locator("#confirm-ok").click()
    expect(engine).to_contain_text("Paused by tg:7000001", timeout=10_000)
    expect(app.locator("#banner-paused")).to_be_visible()
    app.locator("#admin-pause").click()  # now: resume everything
    app.locator("#confirm-ok").click()
    expect(engine).to_contain_text("Running", timeout=10_000)


def test_a_phone_sized_screenshot(browser: Any, sandbox: Running) -> None:
    """The Mini App alone in a phone's viewport, as Telegram shows it, for the README."""
    from playwright.sync_api import expect

    context = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
    refused = offline(context)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(launch_url(sandbox, PRIYA))
    expect(page.locator(".signal-card").first).to_be_visible(timeout=25_000)
    page.wait_for_timeout(300)  # let the countdown bars settle for the picture
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "miniapp-phone.png"))
    if os.environ.get("MINIAPP_DOCS_SCREENSHOT") == "1":
        page.screenshot(path=str(ROOT / "docs" / "miniapp.png"))
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]  # no sideways scroll
    context.close()
    assert not errors, errors
    assert not refused, refused
