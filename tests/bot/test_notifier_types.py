"""The notifier skips event types it never turns into a message without opening a transaction; a
type it does handle must be in that list, or its message is silently never sent."""

from __future__ import annotations

import ast
import inspect

from bot import notifier
from engine.store import events as ev


def _types_compared_in_messages() -> set[str]:
    """Every ``ev.NAME`` (or tuple/set of them) ``Notifier._messages`` compares ``t`` with."""
    tree = ast.parse(inspect.getsource(notifier.Notifier._messages).lstrip().replace("\n    ", "\n"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and isinstance(node.left, ast.Name) and node.left.id == "t":
            for comparator in node.comparators:
                for sub in ast.walk(comparator):
                    if (
                        isinstance(sub, ast.Attribute)
                        and isinstance(sub.value, ast.Name)
                        and sub.value.id == "ev"
                    ):
                        found.add(getattr(ev, sub.attr))
                    if isinstance(sub, ast.Name) and sub.id in (
                        "ORDER_RESULTS",
                        "OPS_ONLY",
                        "CHANGE_OUTCOMES",
                    ):
                        found |= set(getattr(notifier, sub.id))
    return found


def test_every_type_the_notifier_renders_is_handled() -> None:
    rendered = _types_compared_in_messages()
    assert ev.DAILY_LOSS_REACHED in rendered and ev.POSITION_MODIFIED in rendered  # the parse works
    assert rendered <= notifier.HANDLED, sorted(rendered - notifier.HANDLED)
