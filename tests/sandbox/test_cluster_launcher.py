"""``make cluster`` (``python -m sandbox.cluster``): a missing database is created and migrated, the
instances start behind the balancer, answer through it, and all stop on Ctrl-C with status 0."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.support.databases import PG_ADMIN_URL, pg_admin
from tests.support.ports import free_port
from tests.support.redis import REDIS_URL
from tests.support.sandbox_process import Output
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


async def test_make_cluster_starts_instances_behind_a_balancer(tmp_path: Path) -> None:
    name = f"tradebot_cluster_{uuid.uuid4().hex[:10]}"
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox.cluster", "--instances", "2", "--port", str(port),
         "--database-url", url, "--redis-url", REDIS_URL, "--data-dir", str(tmp_path)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    output = Output(proc)
    try:
        wait_for(lambda: "Press Ctrl-C" in output.text or proc.poll() is not None, 120, "the banner")
        assert proc.poll() is None, output.text
        assert "cluster-1: pid" in output.text and "cluster-2: pid" in output.text
        seen = set()
        for _ in range(4):  # round robin: both instances answer through the balancer
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as resp:
                seen.add(json.loads(resp.read())["instance"]["id"])
        assert seen == {"cluster-1", "cluster-2"}
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0, output.text
        output.join(5)
        assert "cluster stopped" in output.text
        assert (tmp_path / "secret_key").read_text().strip()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        await pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
