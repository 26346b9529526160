"""The texts of a position's life after the fill, in English and Spanish, from the real catalogs."""

from __future__ import annotations

import pytest

from bot.i18n import build_i18n
from bot.render import in_locale
from bot.render_trades import fill_text, stop_moved_text

I18N = build_i18n()


def _fill(kind: str, **extra: object) -> dict[str, object]:
    return {"kind": kind, "targets": [], "fill_volume": "0.40", "fill_price": "1940.00",
            "fill_profit": "-40.00", **extra}  # fmt: skip


@pytest.mark.parametrize(
    ("language", "payload", "expected"),
    [
        ("en", _fill("stop"), "🛑 Stop hit: closed 0.4 lots at 1940 (-40.00 USD)."),
        ("es", _fill("stop"), "🛑 Stop alcanzado: cerrados 0,4 lotes a 1940 (-40,00 USD)."),
        ("en", _fill("manual"), "✋ Closed in the terminal: 0.4 lots at 1940 (-40.00 USD)."),
        ("es", _fill("manual"), "✋ Cerrado en el terminal: 0,4 lotes a 1940 (-40,00 USD)."),
        (
            "en",
            _fill("target", targets=[2, 1], fill_profit="1234.5", stop_moved=True),
            "🎯 Targets 1, 2 hit: closed 0.4 lots at 1940 (+1,234.50 USD). Stop moved to entry.",
        ),
    ],
)
def test_fill_texts(language: str, payload: dict[str, object], expected: str) -> None:
    with in_locale(I18N, language):
        assert fill_text(payload, "USD") == expected


def test_stop_moves_and_the_one_told_with_its_fill() -> None:
    with in_locale(I18N, "en"):
        assert stop_moved_text({"by": "breakeven", "sl": "1950.00"}) == "🔒 Stop moved to entry (1950)."
        assert stop_moved_text({"by": "trailing", "sl": "1957.5"}) == "📈 Stop trailed to 1957.5."
        assert stop_moved_text({"by": "breakeven", "sl": "1950.00", "with_fill": True}) is None
    with in_locale(I18N, "es"):
        assert stop_moved_text({"by": "hand", "sl": "1945"}) == (
            "✋ Stop movido en el terminal a 1945; el bot ya no lo modificará."
        )
