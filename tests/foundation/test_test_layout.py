"""The test suite's own layout: what tests share lives in tests/support, and nothing else is imported.

A test module that imports another test module (or a conftest) couples two folders' tests: moving or
renaming one breaks the other, and pytest may import the module twice under two names. Shared
builders live in tests/support; fixtures live in conftest.py files, which import from tests/support.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
SUPPORT = "tests.support"


def local_module_names() -> set[str]:
    """Modules importable by their bare name: pytest puts a test folder without an ``__init__.py``
    on ``sys.path``, which makes each module in it importable as a top-level module."""
    return {
        path.stem
        for path in TESTS.rglob("*.py")
        if not (path.parent / "__init__.py").exists() and path.stem != "__init__"
    }


def forbidden_imports(source: str, local: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """Every import in ``source`` (at any depth) of a tests module outside tests.support, of a
    conftest, of a module in ``local`` by its bare name, or relative; as ``line: module``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            if node.level > 0:
                found.append((node.lineno, f"relative import {'.' * node.level}{node.module or ''}"))
                continue
            modules = [node.module or ""]
        elif isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        else:
            continue
        for module in modules:
            parts = module.split(".")
            in_tests = parts[0] == "tests"
            in_support = module == SUPPORT or module.startswith(SUPPORT + ".")
            if "conftest" in parts or (in_tests and not in_support) or parts[0] in local:
                found.append((node.lineno, module))
    return [f"{line}: {what}" for line, what in sorted(found)]


def test_no_test_module_imports_another_test_module_or_a_conftest() -> None:
    problems = []
    local = local_module_names()
    for path in sorted(TESTS.rglob("*.py")):
        for problem in forbidden_imports(path.read_text(), local):
            problems.append(f"{path.relative_to(TESTS.parent)}:{problem}")
    assert problems == [], "import what tests share from tests.support:\n" + "\n".join(problems)


def test_shared_modules_live_in_tests_support() -> None:
    """Outside tests/support a folder holds only test modules, conftest.py and __init__.py."""
    strays = [
        str(path.relative_to(TESTS.parent))
        for path in sorted(TESTS.rglob("*.py"))
        if path.parent.name != "support"
        and path.name not in ("conftest.py", "__init__.py")
        and not path.name.startswith("test_")
    ]
    assert strays == [], f"move these into tests/support: {strays}"


def test_the_check_finds_each_kind_of_forbidden_import() -> None:
    source = """
from tests.bot.conftest import WorldFactory
import tests.loop.helpers
from analytics_helpers import Seeder
from conftest import db
from . import fixtures
from tests.support.waiting import eventually
import tests.support.ports


def later():
    from tests.api.test_api_openapi import check
"""
    assert forbidden_imports(source, {"analytics_helpers"}) == [
        "2: tests.bot.conftest",
        "3: tests.loop.helpers",
        "4: analytics_helpers",
        "5: conftest",
        "6: relative import .",
        "12: tests.api.test_api_openapi",
    ]
