"""``python -m emulator --port N`` (what ``tradebot emulator`` runs) serves until Ctrl-C, then exits cleanly."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from pathlib import Path

import aiohttp

from tests.support.telegram import TOKEN

ROOT = Path(__file__).resolve().parents[2]


async def test_runs_alone_and_stops_on_ctrl_c() -> None:
    # port 0: the kernel picks a free port as the emulator binds, and the emulator says which
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "emulator", "--port", "0",
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 15)
        found = re.search(r"http://127\.0\.0\.1:(\d+)", line.decode())
        assert found is not None and int(found.group(1)) > 0, line
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{found.group(0)}/bot{TOKEN}/getMe") as resp:
                assert (await resp.json())["result"]["is_bot"] is True
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 10) == 0
        assert process.stderr is not None
        assert b"Traceback" not in await process.stderr.read()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
