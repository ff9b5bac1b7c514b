"""Time to the first spoken sentence: streaming the model's tokens into the splitter vs waiting for the whole answer.

Both ways run the real reply pipeline with the real Piper voice; "first audio" is when the first AudioFrame
comes out. The remote providers are the loopback fake servers writing at a realistic ~30 tokens/s through the
real SDKs; the local model is the bundled SmolLM2 on this machine's CPU. "Whole answer" wraps the same model so
that the pipeline only gets the text once the model has finished, as a non-streaming client would.

    .venv/bin/python bench/llm_stream.py [--runs 5] [--out bench/results/llm_stream.txt]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import AsyncGenerator, Sequence

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adapters.engines import Engines, build_chat_model, build_synthesizers
from adapters.settings import Settings
from bot.wiring import build_services
from core.errors import AnswerCut
from core.pipeline import ReplyRequest
from core.ports import ChatModel
from core.types import AudioFrame, ChatMessage, ConversationKey, LLMOptions, ReplyDone
from tests.fakes.llm_servers import FakeLLMServer, Reply

TOKENS_PER_SECOND = 30.0
ANSWER = ("Sure, a warm bowl of oatmeal with fresh berries is a great way to start the day. "
          "Add a spoonful of honey if you like it sweet, and some nuts for crunch. "
          "A glass of orange juice on the side makes it a complete breakfast.")
QUESTION = "Can you recommend something for breakfast?"
KEY = "bench-not-a-real-key-0000"


def tokens(text: str) -> list[str]:
    """Word-sized pieces with their leading space, about what a tokenizer streams for English."""
    return re.findall(r"\s*\w+|\s*[^\w\s]", text)


class WholeAnswer:
    """The same model, but the pipeline sees nothing until the answer is complete."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.name = f"whole:{inner.name}"

    @property
    def context_tokens(self) -> int | None:
        return self.inner.context_tokens

    def warm_up(self) -> None:
        self.inner.warm_up()

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def stream(self, messages: Sequence[ChatMessage], options: LLMOptions) -> AsyncGenerator[str, None]:
        pieces: list[str] = []
        try:
            async for piece in self.inner.stream(messages, options):
                pieces.append(piece)
        except AnswerCut as exc:
            if not exc.at_limit:
                raise
            yield "".join(pieces)  # stopped at max_tokens: the whole of what there is, then the same ending
            raise
        yield "".join(pieces)


async def first_audio(settings: Settings, model: ChatModel, synthesizers, key: str) -> tuple[float, float, str]:
    """(seconds to the first AudioFrame, seconds to the end, answer text) for one reply."""
    engines = Engines(recognizer=None, chat_model=model, synthesizers=synthesizers, converters={}, renderer=None)
    services = await build_services(settings, engines=engines)
    try:
        persona = services.personas.get("default")
        start = time.perf_counter()
        first = None
        text = ""
        async for frame in services.pipeline.run(ReplyRequest(key=ConversationKey(key, key), persona=persona, text=QUESTION)):
            if isinstance(frame, AudioFrame) and first is None:
                first = time.perf_counter() - start
            if isinstance(frame, ReplyDone):
                text = frame.text
        return first or float("nan"), time.perf_counter() - start, text
    finally:
        await services.close()


async def measure(label: str, settings: Settings, synthesizers, runs: int, lines: list[str]) -> None:
    streamed = build_chat_model(settings)
    whole = WholeAnswer(build_chat_model(settings))
    times: dict[str, list[float]] = {"stream": [], "whole": []}
    totals: dict[str, list[float]] = {"stream": [], "whole": []}
    sample = ""
    for way, model in (("stream", streamed), ("whole", whole)):  # untimed: loads the model, opens connections
        await first_audio(settings, model, synthesizers, f"{label}-{way}-warm")
    for run in range(runs):
        # alternate the two ways so that drift on a shared machine hits both alike
        for way, model in (("stream", streamed), ("whole", whole)):
            first, total, text = await first_audio(settings, model, synthesizers, f"{label}-{way}-{run}")
            times[way].append(first)
            totals[way].append(total)
            sample = sample or text
    await streamed.aclose()
    await whole.inner.aclose()
    s, w = statistics.median(times["stream"]), statistics.median(times["whole"])
    row = (f"{label:34s} {s:8.2f} s {w:8.2f} s {w / s:7.1f}x   (whole reply: {statistics.median(totals['stream']):.2f} s"
           f" streamed, {statistics.median(totals['whole']):.2f} s waiting)")
    lines.append(row)
    print(row, flush=True)
    lines.append(f"{'':34s} answer: {sample[:110]}")


async def main(runs: int, out: Path | None) -> None:
    data = Path(tempfile.mkdtemp(prefix="llm-stream-"))
    base = Settings(_env_file=None, data_dir=data / "tts")
    synthesizers = build_synthesizers(base)
    synthesizers[0].warm_up()  # Piper's model load is not what is measured
    pieces = tokens(ANSWER)
    lines = [
        f"time to first spoken sentence (first AudioFrame, Piper TTS), median of {runs} runs; {os.cpu_count()} CPU cores",
        f"remote: loopback fake servers, real SDKs, {len(pieces)} tokens at {TOKENS_PER_SECOND:g} tokens/s "
        f"({len(pieces) / TOKENS_PER_SECOND:.1f} s to write the whole answer)",
        "",
        f"{'model':34s} {'streaming':>10s} {'whole answer':>12s} {'ratio':>7s}",
    ]
    print("\n".join(lines), flush=True)
    for dialect in ("openai", "zhipu", "gemini"):
        reply = Reply(pieces=pieces, piece_delay=1.0 / TOKENS_PER_SECOND)
        async with FakeLLMServer(dialect, [reply]) as server:
            settings = Settings(_env_file=None, data_dir=data / dialect, llm_provider=dialect,
                                **{f"{dialect}_base_url": server.base_url, f"{dialect}_api_key": KEY})
            await measure(f"{dialect} (fake, 30 tok/s)", settings, synthesizers, runs, lines)
    local = Settings(_env_file=None, data_dir=data / "local", llm_provider="local")
    await measure("local SmolLM2-135M (CPU)", local, synthesizers, runs, lines)
    lines += ["", "ratio = whole-answer time / streaming time to the first spoken sentence"]
    print(lines[-1])
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "llm_stream.txt")
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.out))
