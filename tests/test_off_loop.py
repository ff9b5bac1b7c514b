"""File work runs off the event loop: one bot process answers everyone, so a voice deleted with its gigabytes of
clips, or a 300 MB model written to disk, must not stall the other users' answers meanwhile."""
from __future__ import annotations

import ast
import asyncio
import time

from bot.common import lifecycle
from tests.conftest import ROOT
from tests.lifecycle_fixtures import voice_with_versions

# calls that read, write or remove files (or wait for a process): each blocks whoever runs it until the disk is done
BLOCKING = {"read_bytes", "write_bytes", "read_text", "write_text", "rmtree", "copytree", "copyfile", "move"}
# the bot's shared code and the workers' job bodies; bot/cli.py is a one-user command whose loop serves no one else
CHECKED = ["bot/common", "bot/telegram", "bot/discord", "bot/web", "bot/ray_worker.py", "bot/worker.py",
           "RVC/docker_run.py", "RVC/jobs.py", "geneface/jobs.py", "geneface/docker_engine.py"]


def _blocking_calls_in_async_functions(tree: ast.AST) -> list[str]:
    found: list[str] = []

    def visit(node: ast.AST, in_async: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.AsyncFunctionDef):
                visit(child, True)
            elif isinstance(child, (ast.FunctionDef, ast.Lambda)):
                visit(child, False)  # a plain function is what a thread runs
            else:
                if in_async and isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute) \
                        and child.func.attr in BLOCKING:
                    found.append(f"{child.lineno}: {ast.unparse(child)[:80]}")
                visit(child, in_async)

    visit(tree, False)
    return found


def test_async_code_hands_file_work_to_a_thread():
    paths = [p for entry in CHECKED for p in ((ROOT / entry).rglob("*.py") if (ROOT / entry).is_dir() else [ROOT / entry])]
    offenders = {str(p.relative_to(ROOT)): calls for p in paths
                 if (calls := _blocking_calls_in_async_functions(ast.parse(p.read_text(encoding="utf-8"))))}
    assert offenders == {}


async def _heartbeat(gaps: list[float], stop: asyncio.Event) -> None:
    last = time.perf_counter()
    while not stop.is_set():
        await asyncio.sleep(0.002)
        now = time.perf_counter()
        gaps.append(now - last)
        last = now


async def test_deleting_a_voice_with_many_files_keeps_the_loop_answering(services):
    await voice_with_versions(services, "anna")
    folder = services.settings.data_dir / "voices" / "anna"
    for part in range(40):  # recordings, features and checkpoints: thousands of files
        sub = folder / f"part{part}"
        sub.mkdir()
        for i in range(150):
            (sub / f"clip-{i}.wav").write_bytes(b"\0" * 2048)
    gaps: list[float] = []
    stop = asyncio.Event()
    beat = asyncio.create_task(_heartbeat(gaps, stop))
    started = time.perf_counter()
    await lifecycle.delete(services, "voice", "anna")
    took = time.perf_counter() - started
    stop.set()
    await beat
    assert not folder.exists()
    # blocking, the longest gap is the whole removal; off the loop it is a small part of it
    assert max(gaps) < took / 3, f"the loop stalled {max(gaps) * 1000:.0f} ms of a {took * 1000:.0f} ms delete"
