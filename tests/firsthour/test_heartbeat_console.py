"""Issue 19 item 14: heartbeats do not bury the console; JSON logs keep every one."""

from __future__ import annotations

import io
import json

from engine.loop.heartbeat import LoopStats, beat
from engine.observability.logs import setup_logging
from engine.store.db import Database


async def test_console_shows_one_heartbeat_a_minute_and_the_final_one(sqlite_db: Database) -> None:
    buf = io.StringIO()
    setup_logging("INFO", stream=buf)
    stats = LoopStats()
    for _ in range(4):
        await beat(sqlite_db, loop_id="L1", stats=stats)
    await beat(sqlite_db, loop_id="L1", stats=stats, final=True)
    lines = [line for line in buf.getvalue().splitlines() if "heartbeat loop=L1" in line]
    assert len(lines) == 2, lines
    assert lines[-1].endswith("(final)")


async def test_json_logs_and_debug_console_keep_every_heartbeat(sqlite_db: Database) -> None:
    for json_lines, level in ((True, "INFO"), (False, "DEBUG")):
        buf = io.StringIO()
        setup_logging(level, json_lines, stream=buf)
        stats = LoopStats()
        for _ in range(3):
            await beat(sqlite_db, loop_id="L2", stats=stats)
        lines = [line for line in buf.getvalue().splitlines() if "heartbeat loop=L2" in line]
        assert len(lines) == 3, (json_lines, level, lines)
        if json_lines:
            assert json.loads(lines[0])["extra"]["heartbeat"] is True
