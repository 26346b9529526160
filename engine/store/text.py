"""The one rule for text the store keeps, the same on SQLite and PostgreSQL.

PostgreSQL cannot store U+0000 in a text column at all (asyncpg raises), while SQLite stores it
and every other control character silently; a terminal or a Telegram message showing them later
is another problem. So every text field that comes from outside (the producer's signal fields,
headers, path parameters, names) is checked before it is stored: control characters
U+0000..U+001F and U+007F are refused, except tab and newline. ``control_character`` finds the
first offending one; ``CleanText`` is the pydantic form of the rule.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def control_character(value: str) -> str | None:
    """A description of the first refused control character in ``value`` (None when clean)."""
    found = _CONTROL.search(value)
    if found is None:
        return None
    return f"U+{ord(found.group()):04X} at position {found.start()}"


def check_text(value: str) -> str:
    """``value`` when it is clean; raises ``ValueError`` naming the character otherwise."""
    found = control_character(value)
    if found is not None:
        raise ValueError(f"must not contain control characters other than tab and newline ({found})")
    return value


CleanText = Annotated[str, AfterValidator(check_text)]
