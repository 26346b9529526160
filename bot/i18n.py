"""Translations: gettext catalogs in ``locales/<lang>/LC_MESSAGES/<domain>.po``, used through aiogram's i18n.

Each feature keeps its own domain (one ``.po`` per feature and language), and all domains of a
language are chained into one translation, so a feature's strings live beside its peers' without
editing a shared catalog. ``.po`` files are compiled in memory by Babel at start-up, so no
compiled ``.mo`` file has to be kept in step with its source.
"""

from __future__ import annotations

import gettext
import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aiogram.utils.i18n import I18n
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LOCALES_DIR = Path(__file__).resolve().parent.parent / "locales"
SUPPORTED = ("en", "es")
DEFAULT_LOCALE = "en"


def _compile(po_path: Path) -> gettext.GNUTranslations:
    with po_path.open("rb") as fp:
        catalog = read_po(fp, locale=po_path.parent.parent.name)
    buf = io.BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return gettext.GNUTranslations(buf)


class CatalogI18n(I18n):
    """aiogram's I18n over every domain's ``.po`` file, chained per language."""

    @contextmanager
    def context(self) -> Iterator[I18n]:
        """Make this the instance aiogram's ``gettext``/``lazy_gettext`` use.

        aiogram keeps the current instance in a context variable *per class*, and its module-level
        ``gettext`` reads ``I18n``'s; the inherited ``context()`` would set the subclass's own one.
        """
        token = I18n.set_current(self)
        try:
            yield self
        finally:
            I18n.reset_current(token)

    def find_locales(self) -> dict[str, gettext.GNUTranslations]:
        translations: dict[str, gettext.GNUTranslations] = {}
        for lang_dir in sorted(p for p in self.path.iterdir() if p.is_dir()):
            chain: gettext.GNUTranslations | None = None
            for po_path in sorted((lang_dir / "LC_MESSAGES").glob("*.po")):
                compiled = _compile(po_path)
                if chain is None:
                    chain = compiled
                else:
                    chain.add_fallback(compiled)
            if chain is not None:
                translations[lang_dir.name] = chain
        return translations


def build_i18n(path: Path = LOCALES_DIR) -> CatalogI18n:
    return CatalogI18n(path=path, default_locale=DEFAULT_LOCALE, domain="messages")


def pick_locale(language_code: str | None) -> str:
    """The supported language closest to a Telegram ``language_code`` (``es-AR`` -> ``es``)."""
    if not language_code:
        return DEFAULT_LOCALE
    base = language_code.split("-", 1)[0].lower()
    return base if base in SUPPORTED else DEFAULT_LOCALE
