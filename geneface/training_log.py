"""Reading a GeneFace++ stage's log as it is written: progress (tqdm's "12345step [...]" and the preprocessing
script's "doppel-step N/M"), saved checkpoints and errors, turned into the job's progress and written to the
job row at most every REPORT_INTERVAL seconds."""
from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

from geneface.stages import Stage

# writes to the job row: at most one every this many seconds (tqdm redraws many times a second)
REPORT_INTERVAL = 2.0


_TQDM_STEP = re.compile(r"(?:^|\s)(\d+)(?:/\S+)?\s*step\s*\[(\d+:\d+(?::\d+)?)(?:<[^,]*)?,\s*([\d.]+)(step/s|s/step)")
_SAVED = re.compile(r"saving model to (\S*model_ckpt_steps_(\d+)\.ckpt)")
_STEP_OF = re.compile(r"^doppel-step (\d+)/(\d+): (\S+)")
_END = re.compile(r"^\| Training end")
_ERROR = re.compile(r"(Traceback \(most recent call last\)|CUDA out of memory|RuntimeError:|Error:|No such file|^doppel-missing:)")


@dataclass
class LogEvent:
    kind: str  # "step" | "checkpoint" | "part" | "end" | "error" | "line"
    text: str
    step: int = 0
    rate: float | None = None  # steps per second
    path: str = ""


def split_lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """Docker's log stream in lines; tqdm redraws with carriage returns, each redraw counts as a line."""
    buf = ""
    for chunk in chunks:
        buf += chunk.decode("utf-8", "replace")
        parts = re.split(r"[\r\n]", buf)
        buf = parts.pop()
        for p in parts:
            if p.strip():
                yield p.strip()
    if buf.strip():
        yield buf.strip()


def parse_line(line: str) -> LogEvent:
    if m := _SAVED.search(line):
        return LogEvent("checkpoint", line, step=int(m.group(2)), path=m.group(1))
    if m := _TQDM_STEP.search(line):
        value = float(m.group(3))
        rate = value if m.group(4) == "step/s" else (1.0 / value if value else None)
        return LogEvent("step", line, step=int(m.group(1)), rate=rate)
    if _END.search(line):
        return LogEvent("end", line)
    if m := _STEP_OF.search(line):
        return LogEvent("part", line, step=int(m.group(1)), path=m.group(3))
    if _ERROR.search(line):
        return LogEvent("error", line)
    return LogEvent("line", line)


@dataclass
class StageProgress:
    """Turns a stage's log events into (step, overall progress, eta) and remembers how the stage went."""

    stage: Stage
    offset: float  # overall progress when this stage started
    share: float
    step: int = 0
    parts: int = 1  # preprocessing: how many steps its script announced
    part: str = ""  # preprocessing: the step running now
    rate: float | None = None
    ended: bool = False
    errors: list[str] = field(default_factory=list)
    tail: deque = field(default_factory=lambda: deque(maxlen=40))  # the last lines other than progress bars

    def update(self, event: LogEvent) -> tuple[int, float, float | None] | None:
        if event.kind != "step":
            self.tail.append(event.text)
        if event.kind == "step" and self.stage.max_steps:
            self.step, self.rate = event.step, event.rate or self.rate
        elif event.kind == "checkpoint":
            self.step = max(self.step, event.step)
        elif event.kind == "part" and not self.stage.max_steps:
            # a step's announcement: the ones before it are done
            found = _STEP_OF.search(event.text)
            assert found is not None  # a "part" event is a line this pattern matched
            self.parts = int(found.group(2))
            self.step, self.part = event.step - 1, event.path
        elif event.kind == "end":
            self.ended = True
            return None
        elif event.kind == "error":
            self.errors.append(event.text)
            return None
        else:
            return None
        total = self.stage.max_steps or self.parts
        fraction = min(1.0, self.step / total)
        eta = (total - self.step) / self.rate if self.rate and self.stage.max_steps else None
        return self.step, self.offset + self.share * fraction, eta

    def failure(self, code: int) -> str | None:
        """Why the stage failed, or None when it did not."""
        where = f" at step '{self.part}'" if self.part else ""
        if code != 0:
            cause = self.errors[-1] if self.errors else f"exit code {code}"
            return f"GeneFace++ {self.stage.name} failed{where}: {cause}"
        if self.stage.max_steps and not self.ended:
            return f"GeneFace++ {self.stage.name} stopped without '| Training end'"
        return None


class ProgressWriter:
    """One stage's progress and log lines, written to the job at most every `interval` seconds.

    Called from the thread that reads the container's log; a write goes through the event loop, and a
    cancel raised by it (JobCancelled) comes back into that thread, which then stops the container.
    """

    def __init__(self, ctx, loop: asyncio.AbstractEventLoop, stage: str, *, interval: float = REPORT_INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ctx, self.loop, self.stage, self.interval, self.clock = ctx, loop, stage, interval, clock
        self.step, self.progress = 0, 0.0
        self.eta: float | None = None
        self.lines: list[str] = []
        self.checkpoint: str | None = None
        self.dirty = False
        self.last = clock()

    def note(self, *, update: tuple[int, float, float | None] | None = None, line: str | None = None,
             checkpoint: str | None = None, urgent: bool = False) -> None:
        if update is not None:
            self.step, self.progress, self.eta = update
            self.dirty = True
        if line:
            self.lines.append(f"{self.stage}: {line}"[:300])
            self.dirty = True
        if checkpoint:
            self.checkpoint, self.dirty = checkpoint, True
        if urgent or checkpoint or self.clock() - self.last >= self.interval:
            self.flush()

    def flush(self) -> None:
        if not self.dirty:
            return
        lines, self.lines = self.lines[-20:], []
        checkpoint, self.checkpoint = self.checkpoint, None
        self.dirty, self.last = False, self.clock()
        asyncio.run_coroutine_threadsafe(
            self.ctx.report(step=self.step, progress=self.progress, eta_seconds=self.eta, checkpoint=checkpoint,
                            log_line="\n".join(lines) or None), self.loop).result()
