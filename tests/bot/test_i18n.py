"""Every string the bot shows has an English and a non-empty Spanish translation with the same placeholders."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.pofile import read_po

from bot.i18n import LOCALES_DIR, build_i18n

ROOT = Path(__file__).resolve().parents[2]
KEYWORDS = {**DEFAULT_KEYWORDS, "lazy_gettext": None, "__": None}
PLACEHOLDER = re.compile(r"\{(\w*)\}")


def used_msgids() -> dict[str, str]:
    """msgid -> where it is used, for every gettext call under bot/."""
    found: dict[str, str] = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
        str(ROOT / "bot"), method_map=[("**.py", "python")], keywords=KEYWORDS
    ):
        msgid = message[0] if isinstance(message, tuple) else message
        found.setdefault(msgid, f"bot/{filename}:{lineno}")
    return found


def catalogs(language: str) -> list[Catalog]:
    out = []
    for path in sorted((LOCALES_DIR / language / "LC_MESSAGES").glob("*.po")):
        with path.open("rb") as fp:
            out.append(read_po(fp, locale=language))
    return out


def translation(language: str, msgid: str) -> str | None:
    for catalog in catalogs(language):
        message = catalog.get(msgid)
        if message is not None and message.string and not message.fuzzy:
            return str(message.string)
    return None


def test_the_extractor_finds_the_bots_strings() -> None:
    ids = used_msgids()
    assert "✅ Approve" in ids and "Sorry, this command is for admins only." in ids
    assert len(ids) > 150


@pytest.mark.parametrize("language", ["en", "es"])
def test_every_msgid_used_in_bot_is_translated(language: str) -> None:
    missing = [
        f"{where}: {msgid!r}"
        for msgid, where in used_msgids().items()
        if translation(language, msgid) is None
    ]
    assert not missing, f"{len(missing)} strings have no {language} translation:\n" + "\n".join(missing)


def test_spanish_translations_keep_the_placeholders() -> None:
    wrong = []
    for msgid, where in used_msgids().items():
        text = translation("es", msgid)
        if text is not None and sorted(PLACEHOLDER.findall(text)) != sorted(PLACEHOLDER.findall(msgid)):
            wrong.append(f"{where}: {msgid!r} -> {text!r}")
    assert not wrong, "\n".join(wrong)


def test_spanish_is_really_spanish() -> None:
    i18n = build_i18n()
    assert i18n.gettext("✅ Approve", locale="es") == "✅ Aprobar"
    assert i18n.gettext("Sorry, this command is for admins only.", locale="es").startswith("Lo siento")
