"""How well the bundled local model (SmolLM2-135M via llama.cpp) answers, under a few cheap prompt and sampling choices.

A small model tends to echo the question back. For each configuration this asks the same questions (through
the default persona, as the bot does) and counts: echoes (the answer mostly repeats the question), empty
answers, factual questions answered with the expected word, and the mean answer length. Side by side in one run.

    .venv/bin/python bench/llm_local.py [--out bench/results/llm_local.txt]
"""
from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adapters.llm_local import LocalChatModel, bundled_gguf, echoes
from bot.personas import PersonaBook
from core.errors import AnswerCut
from core.types import ChatMessage, LLMOptions

# (question, a word a right answer contains, or "" for open questions)
QUESTIONS = [
    ("What is the capital of France?", "paris"),
    ("What color is the sky on a clear day?", "blue"),
    ("How many legs does a spider have?", "eight|8"),
    ("What do bees make?", "honey"),
    ("Which animal says moo?", "cow"),
    ("Hello, how are you today?", ""),
    ("Can you recommend something for breakfast?", ""),
    ("What should I do if I can't sleep?", ""),
    ("Tell me a fun fact about cats.", ""),
    ("How do I make a cup of tea?", ""),
    ("What is your favourite season and why?", ""),
    ("Where should I save my important files?", ""),
    # what the bot hears in its tests: transcripts of the shared voice-prompt clips, statements not questions
    ("Please enter your password followed by the pound key.", ""),
    ("Your call cannot be completed as dialed.", ""),
    ("The conference is now being recorded.", ""),
    ("You are currently the only person in this conference.", ""),
    ("Please check the number and dial again.", ""),
    ("The leader has left the conference.", ""),
    ("Which folder would you like to save the message in?", ""),
    ("Thank you for calling. Please hold.", ""),
]

# name: (LocalChatModel keyword arguments, temperature)
CONFIGS: dict[str, tuple[dict, float]] = {
    "before: t=0.7, repeat 1.15": (dict(examples=False, echo_retries=0), 0.7),
    "t=0.3": (dict(examples=False, echo_retries=0), 0.3),
    "t=0.7, repeat 1.3": (dict(repeat_penalty=1.3, examples=False, echo_retries=0), 0.7),
    "t=0.7 + example turns": (dict(examples=True, echo_retries=0), 0.7),
    "t=0.7 + echo guard": (dict(examples=False, echo_retries=2), 0.7),
    "t=0.7 + example turns + echo guard": (dict(examples=True, echo_retries=2), 0.7),
}
SEEDS = (0, 1)


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


async def ask(model: LocalChatModel, system: str, question: str, temperature: float) -> str:
    messages = [ChatMessage("system", system), ChatMessage("user", question)]
    pieces = []
    try:
        async for piece in model.stream(messages, LLMOptions(temperature=temperature, max_tokens=60)):
            pieces.append(piece)
    except AnswerCut:  # stopped at max_tokens: the answer so far is what is judged
        pass
    return "".join(pieces).strip()


async def main(out: Path | None) -> None:
    system = PersonaBook().get("default").system_prompt
    lines = [f"local model: {bundled_gguf().name}; {len(QUESTIONS)} inputs x seeds {SEEDS}, default persona, max 60 tokens",
             "echoes: the answer's opening is mostly the input's words, in order (adapters.llm_local.echoes);",
             "right: factual questions answered with the expected word; words: mean answer length;",
             "new: mean share of the answer's words that are not in the input (a check on echoes the guard does not define)", ""]
    header = f"{'configuration':40s} {'echoes':>8s} {'empty':>5s} {'right':>8s} {'words':>6s} {'new':>6s} {'s/answer':>9s}"
    lines.append(header)
    samples: dict[str, list[tuple[str, str]]] = {}
    facts = sum(1 for _, k in QUESTIONS if k)
    for name, (kwargs, temperature) in CONFIGS.items():
        echoes_n = empty = right = 0
        lengths: list[int] = []
        novel: list[float] = []
        answers = []
        t0 = time.perf_counter()
        for seed in SEEDS:
            model = LocalChatModel(bundled_gguf(), threads=2, seed=seed, **kwargs)
            model.warm_up()
            for question, key in QUESTIONS:
                answer = await ask(model, system, question, temperature)
                if seed == SEEDS[0]:
                    answers.append((question, answer))
                echoes_n += echoes(question, answer)
                empty += not answer
                right += bool(key) and bool(re.search(rf"\b({key})\b", answer.lower()))
                lengths.append(len(words(answer)))
                said = words(answer)
                novel.append(sum(w not in set(words(question)) for w in said) / len(said) if said else 0.0)
        asked = len(QUESTIONS) * len(SEEDS)
        per = (time.perf_counter() - t0) / asked
        samples[name] = answers
        row = (f"{name:40s} {echoes_n:>4d}/{asked:<3d} {empty:>5d} {right:>4d}/{facts * len(SEEDS):<3d}"
               f" {statistics.mean(lengths):>6.1f} {statistics.mean(novel):>6.2f} {per:>9.2f}")
        lines.append(row)
        print(row, flush=True)
    lines.append("")
    for name in (next(iter(CONFIGS)), *[n for n in CONFIGS if n == KEPT]):
        lines.append(f"answers with '{name}':")
        for question, answer in samples[name][::2]:
            lines.append(f"  Q: {question}\n  A: {answer}")
        lines.append("")
    text = "\n".join(lines)
    print(text)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n", encoding="utf-8")


KEPT = "t=0.7 + example turns + echo guard"  # what LocalChatModel's defaults now do, with the configured temperature

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "llm_local.txt")
    asyncio.run(main(parser.parse_args().out))
