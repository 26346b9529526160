"""Localized texts in English and Spanish: /stats, periods, errors, chart labels, daily summaries."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal as D
from html.parser import HTMLParser
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_file
from babel.messages.pofile import read_po

from bot.i18n import LOCALES_DIR, build_i18n
from bot.render_stats import (
    chart_labels,
    describe_period,
    describe_scope,
    render_daily_summary,
    render_export_caption,
    render_ops_daily,
    render_period_error,
    render_stats,
)
from engine.analytics.data import Exposure, Scope
from engine.analytics.metrics import compute_metrics
from engine.analytics.period import PeriodError, parse_period
from engine.analytics.summary import DailyReport, SubscriberDaySummary, summarise_day
from tests.support.analytics import END, EQUITY, EXPOSURES, START, TRADES, at, data, trade

NOW = at(20)
RENDER_SOURCE = Path(__file__).resolve().parents[2] / "bot" / "render_stats.py"


@pytest.fixture(scope="module")
def i18n():
    return build_i18n()


class TelegramHTML(HTMLParser):
    """Checks that a message only uses tags Telegram accepts, properly nested."""

    ALLOWED = {"b", "i", "u", "s", "code", "pre", "a"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.text = ""

    def handle_starttag(self, tag, attrs):
        assert tag in self.ALLOWED, tag
        self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack.pop() == tag

    def handle_data(self, d):
        self.text += d


def visible(html: str) -> str:
    parser = TelegramHTML()
    parser.feed(html)
    parser.close()
    assert parser.stack == []
    return parser.text


def metrics():
    return compute_metrics(data(TRADES, EXPOSURES, EQUITY), start=START, end=END, equity_based=True)


def test_stats_in_english(i18n):
    period = parse_period("2026-03", NOW)
    html = render_stats(metrics(), title="Account 1", period=period, i18n=i18n, locale="en")
    text = visible(html)
    assert "Performance: Account 1" in text
    assert "March 2026" in text
    assert "4 trades closed: 2 won, 1 lost, 1 at break-even" in text
    assert "Win rate: 50.00%" in text
    assert "Profit factor: 3.71" in text  # 196.5 / 53
    assert "Expectancy: +35.88 per trade" in text
    assert "Net profit: +143.50 (commission -8.00, swap -0.50)" in text
    assert "Best trade: +118.00 (EURUSD, Mar 1, 2026)" in text
    assert "Equity: 1,000.00 to 1,150.00" in text
    assert "Return: +150.00 (+15.00%)" in text
    assert "Max drawdown: 110.00 (10.00%), lasting 2 days" in text
    assert "Exposure: 33.33% of the period" in text
    assert "Sharpe: " in text and "annualised over 365 days" in text


def test_stats_in_spanish(i18n):
    period = parse_period("30d", NOW)
    html = render_stats(metrics(), title="Cuenta 1", period=period, i18n=i18n, locale="es")
    text = visible(html)
    assert "Rendimiento: Cuenta 1" in text
    assert "últimos 30 días" in text
    assert "4 operaciones cerradas (ganadoras: 2, perdedoras: 1, neutras: 1)" in text
    assert "Tasa de acierto: 50,00" in text
    assert "Capital: de 1.000,00 a 1.150,00" in text
    assert "Drawdown máximo: 110,00 (10,00" in text and "2 días" in text
    assert "Exposición: 33,33" in text
    assert "Sharpe" in text and "365 días" in text
    for english in ("Win rate", "Equity", "trades closed", "Performance"):
        assert english not in text


def test_user_data_is_escaped(i18n):
    nasty = "<b>Evil</b> & co"
    m = compute_metrics(
        data([trade("5", symbol="<script>", opened=at(1), closed=at(1, 1))]),
        start=START,
        end=END,
        equity_based=False,
    )
    html = render_stats(m, title=nasty, period=parse_period("7d", NOW), i18n=i18n, locale="en")
    assert "&lt;b&gt;Evil&lt;/b&gt; &amp; co" in html and "&lt;script&gt;" in html
    assert "<script>" not in html
    text = visible(html)
    assert nasty in text
    # A trade-based scope has no equity: amounts only.
    assert "Max drawdown: 0.00, lasting —" in text and "Return:" not in text


def test_no_data(i18n):
    m = compute_metrics(data(), start=START, end=END, equity_based=True)
    for locale, expected in (("en", "No trades or equity recorded"), ("es", "Todavía no hay operaciones")):
        html = render_stats(m, title="X", period=parse_period("all", NOW), i18n=i18n, locale=locale)
        assert expected in visible(html)


@pytest.mark.parametrize(
    ("spec", "en", "es"),
    [
        ("1d", "last 1 day", "último 1 día"),
        ("7d", "last 7 days", "últimos 7 días"),
        ("1w", "last 1 week", "última 1 semana"),
        ("4w", "last 4 weeks", "últimas 4 semanas"),
        ("today", "today", "hoy"),
        ("mtd", "month to date", "mes en curso"),
        ("ytd", "year to date", "año en curso"),
        ("all", "all time", "todo el historial"),
        ("2025", "2025", "2025"),
        ("2026-02", "February 2026", "febrero de 2026"),
        ("2026-02-14", "February 14, 2026", "14 de febrero de 2026"),
    ],
)
def test_period_names(i18n, spec, en, es):
    period = parse_period(spec, NOW)
    assert describe_period(period, i18n=i18n, locale="en") == en
    assert describe_period(period, i18n=i18n, locale="es") == es


@pytest.mark.parametrize(
    ("text", "en", "es"),
    [
        ("fortnight", "Unknown period “fortnight”. Try 7d", "Período desconocido «fortnight». Prueba 7d"),
        ("0d", "out of range: use 1 to 3650 days or 1 to 520 weeks", "fuera de rango: usa de 1 a 3650 días"),
        ("2026-02-30", "“2026-02-30” is not a valid date.", "«2026-02-30» no es una fecha válida."),
        ("2027", "“2027” is in the future", "«2027» está en el futuro"),
        ("<i>", "Unknown period “&lt;i&gt;”", "Período desconocido «&lt;i&gt;»"),
    ],
)
def test_period_errors(i18n, text, en, es):
    with pytest.raises(PeriodError) as info:
        parse_period(text, NOW)
    assert en in render_period_error(info.value, i18n=i18n, locale="en")
    assert es in render_period_error(info.value, i18n=i18n, locale="es")


def test_scope_names(i18n):
    assert describe_scope(Scope(), i18n=i18n, locale="en") == "All accounts"
    assert describe_scope(Scope(), i18n=i18n, locale="es") == "Todas las cuentas"
    assert (
        describe_scope(Scope(account_id=3, instrument="eurusd"), i18n=i18n, locale="es") == "Cuenta 3, EURUSD"
    )
    assert describe_scope(Scope(user_id=5), i18n=i18n, locale="en") == "My accounts"
    assert describe_scope(Scope(user_id=5), i18n=i18n, locale="en", user_label="@bob") == "@bob"
    assert (
        describe_scope(Scope(producer_id="p1", strategy="s"), i18n=i18n, locale="es", producer_name="Trend")
        == "Proveedor Trend, Estrategia s"
    )


def test_chart_labels(i18n):
    period = parse_period("30d", NOW)
    en = chart_labels(title="Account 1", period=period, i18n=i18n, locale="en")
    es = chart_labels(title="Cuenta 1", period=period, i18n=i18n, locale="es")
    assert en.title == "Account 1: last 30 days (UTC)" and es.title == "Cuenta 1: últimos 30 días (UTC)"
    assert (en.equity, en.no_data, en.peak) == ("Equity", "No data yet", "Peak")
    assert (es.equity, es.no_data, es.peak) == ("Capital", "Aún no hay datos", "Máximo")


def test_export_caption(i18n):
    period = parse_period("2026-02", NOW)
    assert render_export_caption(1, title="A&B", period=period, i18n=i18n, locale="en") == (
        "1 closed trade: A&amp;B, February 2026. Times in UTC."
    )
    assert render_export_caption(3, title="A", period=period, i18n=i18n, locale="es") == (
        "3 operaciones cerradas: A, febrero de 2026. Horas en UTC."
    )


def day_summary():
    equity = {1: [(at(1, 20), D(1000)), (at(2, 3), D(1040)), (at(2, 9), D(988)), (at(2, 22), D(1030))]}
    trades = [
        trade("50", "-1", opened=at(2, 1), closed=at(2, 3)),
        trade("-20", opened=at(2, 5), closed=at(2, 9)),
    ]
    return summarise_day(data(trades, [Exposure(1, at(2, 21), None)], equity), date(2026, 3, 2))


def test_daily_summary_both_languages(i18n):
    s = day_summary()
    en = visible(render_daily_summary(s, i18n=i18n, locale="en"))
    assert "Your day: March 2, 2026 (UTC)" in en
    assert "2 trades closed (1 won, 1 lost): +29.00" in en
    assert "Equity: 1,000.00 to 1,030.00 (+3.00%)" in en
    assert "Max drawdown today: 52.00 (5.00%)" in en
    assert "Open positions: 1" in en
    es = visible(render_daily_summary(s, i18n=i18n, locale="es"))
    assert "Tu día: 2 de marzo de 2026 (UTC)" in es
    assert "2 operaciones cerradas (ganadoras: 1, perdedoras: 1): +29,00" in es
    assert "Posiciones abiertas: 1" in es


def test_ops_daily(i18n):
    s = day_summary()
    subs = [
        SubscriberDaySummary(1, 111, "en", True, (1,), s),
        SubscriberDaySummary(2, 222, "es", True, (2,), summarise_day(data(), date(2026, 3, 2))),
    ]
    report = DailyReport(date(2026, 3, 2), s, subs)
    en = visible(render_ops_daily(report, i18n=i18n, locale="en"))
    assert "Daily summary: March 2, 2026 (UTC)" in en and "2 subscribers active today" in en
    assert en.index("User 111") < en.index("User 222")  # deepest drawdown first
    es = visible(render_ops_daily(DailyReport(date(2026, 3, 2), s, subs[:1]), i18n=i18n, locale="es"))
    assert "1 suscriptor activo hoy" in es and "Usuario 111: +30,00, drawdown máximo 5,00" in es


def _placeholders(text: str) -> set[str]:
    return set(re.findall(r"\{(\w+)\}", text))


def test_catalogs_are_complete():
    used = {
        msg if isinstance(msg, str) else msg[0]
        for _, msg, _, _ in extract_from_file(
            "python", str(RENDER_SOURCE), keywords={"_": None, "_n": (1, 2)}
        )
    }
    for lang in ("en", "es"):
        with (LOCALES_DIR / lang / "LC_MESSAGES" / "analytics.po").open("rb") as fp:
            catalog = read_po(fp, locale=lang)
        ids = {m.id if isinstance(m.id, str) else m.id[0] for m in catalog if m.id}
        assert ids == used, f"{lang}: missing {used - ids}, unused {ids - used}"
        for m in catalog:
            if not m.id:
                continue
            strings = m.string if isinstance(m.string, tuple) else (m.string,)
            sources = m.id if isinstance(m.id, tuple) else (m.id,)
            assert all(strings), f"{lang}: untranslated {m.id!r}"
            assert not m.fuzzy
            for s in strings:
                assert _placeholders(s) == _placeholders(sources[-1]), f"{lang}: placeholders of {m.id!r}"
                assert s.count("<") == sources[0].count("<"), f"{lang}: tags of {m.id!r}"
