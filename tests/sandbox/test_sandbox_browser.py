"""The sandbox page in Chromium: a newcomer approves a demo signal, sees the fill and the position,
and, as the admin, asks for /status and closes everything. Screenshots go to tests/artifacts/
(``SANDBOX_DOCS_SCREENSHOT=1`` also refreshes docs/sandbox.png for the README)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import chromium
from tests.support.sandbox_process import Running, sandbox_process

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
BEN, ADMIN = 7000101, 7000001


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with sandbox_process(tmp_path_factory.mktemp("sandbox-browser"), signal_every="4-6") as running:
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
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(sandbox.url + "/sandbox")
    page.locator(f'.chat-item.active[data-chat-id="{BEN}"]').wait_for(timeout=10_000)
    yield page
    context.close()
    assert not errors, errors


def test_approve_a_signal_see_the_fill_then_act_as_the_admin(page: Any) -> None:
    from playwright.sync_api import expect

    messages = page.locator("#messages")
    expect(page.locator("#pill-live")).to_have_text("● live", timeout=10_000)
    expect(page.locator("#pill-market")).to_contain_text("24/7")
    expect(messages).to_contain_text("paper account starts with 10,000.00 USD")

    # a market signal with its buttons (limit orders rest at the broker instead of filling)
    signal = messages.locator(".msg-row", has=page.locator(".kbd-btn", has_text="Approve")).filter(
        has_text="· market"
    )
    expect(signal.first).to_be_visible(timeout=25_000)
    row = signal.last
    message_id = row.get_attribute("data-message-id")
    symbol = re.search(r"(BUY|SELL) (\w+) · market", row.inner_text()).group(2)  # type: ignore[union-attr]
    row.locator(".kbd-btn", has_text="Approve").click()

    expect(page.locator("#toast")).to_contain_text("Approved", timeout=10_000)
    same = messages.locator(f'[data-message-id="{message_id}"]')
    expect(same).to_contain_text("Filled:", timeout=15_000)  # the signal message, edited in place
    expect(same).to_have_count(1)
    expect(same.locator(".kbd-btn")).to_have_count(0)
    ben = page.locator(".account", has=page.locator(".account-owner", has_text="Ben Carter"))
    expect(ben.locator(f'.position[data-symbol="{symbol}"]')).to_be_visible(timeout=10_000)
    page.wait_for_timeout(600)  # let the sidebar's equity settle for the picture
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "sandbox-approved.png"))
    if os.environ.get("SANDBOX_DOCS_SCREENSHOT") == "1":
        page.screenshot(path=str(ROOT / "docs" / "sandbox.png"))

    # the admin: /status typed in the box gets an answer
    page.locator(f'.chat-item[data-chat-id="{ADMIN}"]').click()
    expect(page.locator("#chat-head")).to_contain_text("admin")
    page.locator("#composer-text").fill("/status")
    page.locator("#composer-text").press("Enter")
    expect(messages.locator(".msg-row.out").last).to_contain_text("/status")
    expect(messages.locator(".msg-row.in", has_text="Engine status").last).to_contain_text(
        "Open positions: 1", timeout=10_000
    )

    # /closeall asks to confirm; confirming closes Ben's position (message edited in place)
    page.locator(".chip", has_text="/closeall").click()
    confirm = messages.locator(".kbd-btn", has_text="Yes, close everything")
    expect(confirm).to_be_visible(timeout=10_000)
    confirm.click()
    # by its text, not as the last message: a demo signal may arrive in the admin's chat meanwhile
    expect(messages.locator(".msg-row.in", has_text="Closed 1 of 1 positions")).to_have_count(
        1, timeout=15_000
    )
    expect(ben.locator(".position")).to_have_count(0, timeout=10_000)
    page.screenshot(path=str(ARTIFACTS / "sandbox-admin.png"))


RENDER_CASE = """() => {
  const text = "<img src=x onerror=alert(1)> 🟢 bold italic code link bad /status";
  const at = (word) => text.indexOf(word);
  const holder = document.createElement("div");
  holder.appendChild(Render.formatted(text, [
    {type: "bold", offset: at("bold"), length: "bold italic".length},
    {type: "italic", offset: at("italic"), length: 6},
    {type: "code", offset: at("code"), length: 4},
    {type: "text_link", offset: at("link"), length: 4, url: "http://127.0.0.1/a?b=<c>"},
    {type: "text_link", offset: at("bad"), length: 3, url: "javascript:alert(1)"},
    {type: "bot_command", offset: at("/status"), length: 7},
  ]));
  const photo = Render.message({message_id: 9, date: 0, chat: {id: 1}, caption: "chart",
      photo: [{file_id: "small", width: 90, height: 60}, {file_id: "big", width: 900, height: 600}]},
      {fileUrl: (id) => "/sandbox/api/files/" + id, onTap: () => {}, onCommand: null}, false);
  return {html: holder.innerHTML, imgs: holder.querySelectorAll("img").length,
          photo: photo.querySelector("img.photo").getAttribute("src"),
          caption: photo.querySelector(".text").textContent};
}"""


def test_messages_are_rendered_from_entities_never_as_html(page: Any) -> None:
    out = page.evaluate(RENDER_CASE)
    html = out["html"]
    assert out["imgs"] == 0 and html.startswith("&lt;img src=x onerror=alert(1)&gt; 🟢 ")
    assert "<b>bold <i>italic</i></b>" in html  # nested, with offsets counted in UTF-16 past the emoji
    assert "<code>code</code>" in html
    assert 'href="http://127.0.0.1/a?b=%3Cc%3E"' in html
    assert "javascript" not in html and "<span>bad</span>" in html
    assert '<span class="command">/status</span>' in html  # no hooks: shown, not clickable
    assert out["photo"] == "/sandbox/api/files/big" and out["caption"] == "chart"
