"""`doppel jobs --cancel` is one database update: it must not load the engines first (6-16 s on a busy machine
before the update was made), only mark the job for the worker to stop."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from storage.db import create_engine, session_factory, upgrade
from storage.jobs import JobRepository

ROOT = Path(__file__).resolve().parent.parent
# what building the services pulls in and cancelling needs none of
HEAVY = ("bot.wiring", "core.pipeline", "faster_whisper", "llama_cpp", "torch")
RUN = """
import json, sys
from bot.cli import main
code = main(["jobs", "--cancel", sys.argv[1]])
print(json.dumps({"code": code, "loaded": [m for m in sys.argv[2:] if m in sys.modules]}))
"""


async def test_cancelling_a_job_from_the_command_line_touches_only_the_database(tmp_path):
    data = tmp_path / "var"
    engine = create_engine(f"sqlite+aiosqlite:///{data / 'doppel.db'}")
    await upgrade(engine)
    jobs = JobRepository(session_factory(engine))
    queued = await jobs.submit("voice", "zed", engine="lite", max_steps=10, gpu=None, params={})
    try:
        done = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-c", RUN, str(queued.id), *HEAVY], cwd=ROOT, capture_output=True,
            text=True, timeout=120, check=False, env={**os.environ, "DOPPEL_DATA_DIR": str(data)})
        assert done.returncode == 0, done.stderr
        said, report = done.stdout.strip().splitlines()[-2:]
        assert said == f"job {queued.id}: cancelled"
        assert json.loads(report) == {"code": 0, "loaded": []}
        assert (await jobs.get(queued.id)).status.value == "cancelled"
    finally:
        await engine.dispose()
