from pathlib import Path

import pytest

from tests.support.strategy_terminal import make_terminal


@pytest.fixture
def terminal(tmp_path: Path) -> Path:
    """A simulated terminal's state file with the producer's data login, market hours ignored."""
    return make_terminal(tmp_path / "mt5sim.sqlite3")
