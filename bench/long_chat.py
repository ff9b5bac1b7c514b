"""Time to the first word over a long conversation with the bundled local model (SmolLM2-135M via llama.cpp):
the history window that slid one exchange a turn (before) against the one that moves in blocks
(storage/history.py), side by side, turn by turn interleaved, each policy with its own model and so its own
cached prompt.

llama.cpp keeps the prompt it evaluated last and reads only what follows the part that is unchanged. Once the
history outgrows its budget (1,200 tokens, about the 13th turn), a window that drops the oldest exchange every
turn changes the prompt right after the system prompt, and the whole history is read again every turn.

Each turn goes through the reply pipeline as a typed web message would (text in, no speech): the persona's
prompt, the history the pipeline loads for its budget, the answer stored as heard. Reported per turn: the median
time to the first token over the conversations, and how many prompt tokens llama.cpp had to evaluate.

    .venv/bin/python bench/long_chat.py [--conversations 3] [--turns 25] [--out bench/results/long_chat.txt]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np

from adapters.llm_local import LocalChatModel, bundled_gguf
from bot.personas import PersonaBook
from core.pipeline import PipelineConfig, ReplyPipeline, ReplyRequest
from core.tokens import MESSAGE_OVERHEAD, token_bound
from core.types import ChatMessage, ConversationKey, ReplyDone
from storage.db import create_engine, session_factory, upgrade
from storage.history import HistoryRepository
from storage.models import Message

QUESTIONS = [
    "Hi! I just moved to a new city and I don't know anyone yet.", "What could I do this weekend to meet people?",
    "I like cooking. Is a cooking class a good idea?", "What should I cook for new friends?",
    "How do I make a simple vegetable soup?", "Which bread goes well with it?",
    "My kitchen is tiny. Any tips?", "What about a small balcony garden?", "Which herbs grow easily?",
    "How often should I water basil?", "I also want to start running. How do I begin?",
    "How far should I run the first week?", "What shoes do I need?", "Is running in the rain a bad idea?",
    "How do I stay motivated in winter?", "Should I join a running club?", "What do people talk about at clubs?",
    "I get nervous in groups. What helps?", "Tell me a good way to start a conversation.",
    "What if the other person is quiet too?", "Do you think I should host a dinner?",
    "How many people should I invite?", "What music fits a dinner?", "How do I end the evening politely?",
    "Thanks. What did we talk about at the start?", "Anything else I should try this month?",
]


class SlidingHistory(HistoryRepository):
    """The window before: the newest messages that fit, so its first message moved on with every exchange."""

    async def load(self, key: ConversationKey, token_budget: int) -> list[ChatMessage]:
        from sqlalchemy import select

        async with self.sessions() as session:
            rows = await session.stream_scalars(select(Message).where(
                Message.user_id == key.user_id, Message.chat_id == key.chat_id).order_by(Message.id.desc()))
            picked, used = [], 0
            async for row in rows:
                cost = max(row.tokens, token_bound(row.content)) + MESSAGE_OVERHEAD
                if used + cost > token_budget:
                    break
                picked.append(row)
                used += cost
        while picked and picked[-1].role == "assistant":
            picked.pop()
        return [ChatMessage(m.role, m.content) for m in reversed(picked)]  # type: ignore[arg-type]


class CountingModel(LocalChatModel):
    """Notes the longest single evaluation of each turn: the prompt tokens llama.cpp could not take from its cache."""

    evaluated = 0

    def _load(self):
        llm = super()._load()
        if not getattr(llm, "_counting", False):
            plain = llm.eval

            def eval(tokens):
                self.evaluated = max(self.evaluated, len(tokens))
                return plain(tokens)

            llm.eval, llm._counting = eval, True
        return llm


async def turn(pipeline: ReplyPipeline, model: CountingModel, persona, key: ConversationKey, text: str) -> tuple[float, int, int]:
    model.evaluated = 0
    history = await pipeline.history.load(key, pipeline.history_budget(persona, text))
    request = ReplyRequest(key=key, persona=persona, text=text, speak=False, language="en")
    first = None
    async for frame in pipeline.run(request):
        if isinstance(frame, ReplyDone):
            first = next(t.seconds for t in frame.timings if t.stage == "llm_first_token")
    assert first is not None
    return first, model.evaluated, sum(token_bound(m.content) + MESSAGE_OVERHEAD for m in history)


def median_ci(values: list[float], n: int = 2000) -> tuple[float, float]:
    x = np.asarray(values, float)
    medians = np.median(np.random.default_rng(0).choice(x, (n, len(x))), axis=1)
    return float(np.percentile(medians, 2.5)), float(np.percentile(medians, 97.5))


async def main(conversations: int, turns: int, out: Path | None) -> None:
    persona = PersonaBook().get("default")
    policies = {"before: sliding": SlidingHistory, "now: blocks": HistoryRepository}
    # policy -> turn -> [(seconds, evaluated tokens, history tokens)]
    seen: dict[str, list[list[tuple[float, int, int]]]] = {p: [[] for _ in range(turns)] for p in policies}
    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(f"sqlite+aiosqlite:///{Path(tmp) / 'chat.db'}")
        await upgrade(engine)
        sessions = session_factory(engine)
        pipelines = {}
        for name, store in policies.items():
            model = CountingModel(bundled_gguf(), threads=2, seed=0)
            model.warm_up()
            pipelines[name] = (ReplyPipeline(recognizer=None, chat_model=model, synthesizers=[], history=store(sessions),  # type: ignore[arg-type]
                                             config=PipelineConfig()), model)
        for c in range(conversations):
            for t in range(turns):
                text = QUESTIONS[t % len(QUESTIONS)]
                order = list(policies) if (c + t) % 2 == 0 else list(reversed(policies))  # neither always goes first
                for name in order:
                    pipeline, model = pipelines[name]
                    key = ConversationKey(f"{name}:{c}", f"{name}:{c}")
                    seen[name][t].append(await turn(pipeline, model, persona, key, text))
                loads.append(os.getloadavg()[0])
                print(f"conversation {c + 1} turn {t + 1}: " + ", ".join(
                    f"{n} {seen[n][t][-1][0]:.2f} s ({seen[n][t][-1][1]} tokens read)" for n in policies), flush=True)
        await engine.dispose()

    names = list(policies)
    lines = [f"bench/long_chat.py: {conversations} conversations x {turns} turns, default persona, history budget "
             f"{PipelineConfig().history_token_budget} tokens, {bundled_gguf().name} via llama.cpp, 2 threads, "
             f"{os.cpu_count()} CPU cores shared with other work (1-min load {min(loads):.1f}-{max(loads):.1f}, "
             f"median {statistics.median(loads):.1f})",
             "per turn: median time to the first token (s) | median prompt tokens evaluated | median history tokens",
             f"{'turn':>4}  " + "  ".join(f"{n:>30s}" for n in names)]
    for t in range(turns):
        cells = []
        for n in names:
            s, e, h = zip(*seen[n][t])
            cells.append(f"{statistics.median(s):>8.2f} s {statistics.median(e):>7.0f} tok {statistics.median(h):>6.0f} hist")
        lines.append(f"{t + 1:>4}  " + "  ".join(f"{c:>30s}" for c in cells))
    lines.append("")
    late = range(12, turns)  # from the 13th turn, where the history is full
    for n in names:
        first2 = [s for s, _, _ in seen[n][1]]
        at20 = [s for s, _, _ in seen[n][min(19, turns - 1)]]
        tail = [s for t in late for s, _, _ in seen[n][t]]
        lo, hi = median_ci(tail)
        lines.append(f"{n}: turn 2 {statistics.median(first2):.2f} s, turn 20 {statistics.median(at20):.2f} s "
                     f"({statistics.median(at20) / statistics.median(first2):.2f}x turn 2); turns 13-{turns}: median "
                     f"{statistics.median(tail):.2f} s [95 % CI {lo:.2f}, {hi:.2f}], "
                     f"{statistics.median(tail) / statistics.median(first2):.2f}x turn 2; prompt tokens evaluated, median "
                     f"{statistics.median(e for t in late for _, e, _ in seen[n][t]):.0f}")
    before = [s for t in late for s, _, _ in seen[names[0]][t]]
    now = [s for t in late for s, _, _ in seen[names[1]][t]]
    lines.append(f"turns 13-{turns}, before/now: {statistics.median(before) / statistics.median(now):.1f}x")
    text = "\n".join(lines)
    print(text)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--conversations", type=int, default=3)
    parser.add_argument("--turns", type=int, default=25)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "long_chat.txt")
    args = parser.parse_args()
    asyncio.run(main(args.conversations, args.turns, args.out))
