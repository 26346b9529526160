"""Issue 19 item 10: one formatting helper, the reader's locale throughout, and no msgid that two
catalogs of one language translate differently (a bare "on" was "activada" in one and
"activadas" in another, and the first one loaded won)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from babel.messages.pofile import read_po

from bot import formatting
from bot.i18n import LOCALES_DIR, SUPPORTED

ROOT = Path(__file__).resolve().parents[2]


def test_no_msgid_is_translated_two_ways_in_one_language() -> None:
    for language in SUPPORTED:
        seen: dict[str, tuple[str, str]] = {}
        clashes = []
        for path in sorted((LOCALES_DIR / language / "LC_MESSAGES").glob("*.po")):
            with path.open("rb") as fp:
                catalog = read_po(fp, locale=language)
            for message in catalog:
                if not message.id or not isinstance(message.id, str) or not message.string:
                    continue
                earlier = seen.setdefault(message.id, (str(message.string), path.name))
                if earlier[0] != message.string:
                    clashes.append(
                        f"{language}: {message.id!r}: {earlier} vs {message.string!r} ({path.name})"
                    )
        assert not clashes, clashes


def test_numbers_money_and_dates_follow_the_locale() -> None:
    assert formatting.price(Decimal("65352.95000"), "en") == "65352.95"
    assert formatting.price(Decimal("65352.95000"), "es") == "65352,95"
    assert formatting.price(Decimal("1.08450"), "es") == "1,0845"
    assert formatting.money(Decimal("-18.426"), "USD", "es") == "-18,43 USD"
    assert formatting.money(Decimal("10000"), "USD", "en") == "10,000.00 USD"
    assert formatting.money(Decimal("66.91"), "EUR", "en", signed=True) == "+66.91 EUR"
    assert formatting.money(Decimal("0"), "USD", "en", signed=True) == "0.00 USD"
    moment = datetime(2026, 12, 2, 3, 46, tzinfo=UTC)
    assert formatting.when(moment, "en") == "2 Dec 2026, 03:46 UTC"
    assert formatting.when(moment, "es") == "2 dic 2026, 03:46 UTC"
    assert formatting.duration(60, "en") == "1 minute"
    assert formatting.duration(900, "es") == "15 minutos"
    assert formatting.duration(100 * 3600, "en") == "100 hours"
    assert formatting.number(Decimal("1.5"), "es") == "1,5"


def test_the_bot_formats_through_the_one_helper() -> None:
    offenders = []
    for path in (ROOT / "bot").rglob("*.py"):
        if path.name == "formatting.py":
            continue
        text = path.read_text()
        if "strftime(" in text or (".isoformat()" in text and "render" in path.name):
            offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, offenders
