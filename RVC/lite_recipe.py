"""How a voice is fine-tuned from the shipped base: the recipes `doppel worker` runs (RVC/jobs.py) and
bench/new_speakers.py measures, both through `fine_tune`, so what is measured is what serves.

A recipe says the budget, the windows per step, whether the discriminators train, which parts of the generator
keep the base's weights (`frozen`) and what share of every batch replays the base's own speakers (`replay_share`,
from `RVC/base/replay.npz` where one was built with the base). Each machine kind has a default; a job's
`recipe` parameter or the bench's `--recipes` picks another by name.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

REPLAY_PATH = Path(__file__).resolve().parent / "base" / "replay.npz"
# the part of the generator that turns content and pitch into the latent: what says the words, learnt from every
# voice the base heard; the decoder after it ("dec") renders that latent as sound, where a speaker's timbre lives
CONTENT_STACK = ("inp.", "pitch.", "blocks.", "out.")


@dataclass(frozen=True)
class Recipe:
    name: str
    max_seconds: float
    max_steps: int = 100_000
    batch_size: int | None = None  # None: the base's
    adversarial: bool = True
    frozen: tuple[str, ...] = ()
    replay_share: float = 0.0
    learning_rate: float | None = None  # None: the base's
    warmup_steps: int = 0  # the learning rate rises linearly over these first steps

    def config(self, base: dict[str, Any]):
        from RVC.lite_model import LiteConfig

        cfg = LiteConfig.from_dict(base["config"])
        if self.batch_size:
            cfg.batch_size = self.batch_size
        if self.learning_rate:
            cfg.learning_rate = self.learning_rate
        cfg.adversarial = self.adversarial
        return cfg

    def describe(self) -> str:
        parts = [f"{self.max_seconds:.0f} s", f"batch {self.batch_size or 'base'}",
                 "mel+adversarial" if self.adversarial else "mel only"]
        if self.frozen:
            parts.append("frozen " + ",".join(f.rstrip(".") for f in self.frozen))
        if self.replay_share:
            parts.append(f"replay {self.replay_share:.0%}")
        if self.learning_rate:
            parts.append(f"lr {self.learning_rate:g}")
        if self.warmup_steps:
            parts.append(f"warm-up {self.warmup_steps} steps")
        return f"{self.name} ({'; '.join(parts)})"


# GPU: 540 s, every part trains against the mel loss and the discriminators (4,335 steps on an H100). CPU: 25 minutes
# on 2 cores buy about 1,140 mel-only steps of 8 windows or 330 with discriminators (bench/lite_cpu_steps.py), and the
# mel-only voice came out closer to the speaker on both scores (bench/results/lite_voice_goals.txt).
_GPU = Recipe("gpu", 540.0)
_CPU = Recipe("cpu", 1500.0, max_steps=20_000, batch_size=8, adversarial=False)
RECIPES = {r.name: r for r in (
    _GPU, _CPU,
    replace(_GPU, name="gpu-frozen", frozen=CONTENT_STACK),
    replace(_CPU, name="cpu-frozen", frozen=CONTENT_STACK),
    replace(_GPU, name="gpu-replay", replay_share=0.25),
    replace(_GPU, name="gpu-frozen-replay", frozen=CONTENT_STACK, replay_share=0.25),
    # a quarter of the step size: 4,335 full steps on 5 minutes of one person is where the words went (issue 23)
    replace(_GPU, name="gpu-gentle", learning_rate=5e-5),
    # the rate rises over the first steps: measured on CPU, 29 steps at the full rate from fresh Adam moments left an
    # Italian speaker's voice mostly unheard (Whisper base: 94 % WER), where the base itself speaks
    replace(_GPU, name="gpu-warm", warmup_steps=200),
    replace(_CPU, name="cpu-warm", warmup_steps=100),
)}
# the CPU default warms up: on the Italian development speaker at an equal 600-s budget (bench/results/new_speakers.txt)
# its 16 steps kept the words (English WER 10.5 % [4.2, 19.0], the base itself 7.4 %) and moved similarity from the
# base's 0.51 to 0.60, where 29 full-rate steps lost them (93.7 % [87.5, 100]); the GPU default waits for the GPU bench
DEFAULT = {"cuda": "gpu", "cpu": "cpu-warm"}


def recipe_for(device_type: str, name: str | None = None) -> Recipe:
    """The named recipe, or the default for a machine of this kind ("cuda" or "cpu")."""
    key = name or DEFAULT["cuda" if device_type == "cuda" else "cpu"]
    if key not in RECIPES:
        raise ValueError(f"unknown lite recipe {key!r} (known: {', '.join(RECIPES)})")
    return RECIPES[key]


def training_set(clips: list[np.ndarray], base: dict[str, Any] | None, content, dims: int = 128,
                 progress=None) -> dict[str, np.ndarray]:
    """The speaker's clips → the training set, in the base's content coordinates (a voice must see what it saw)."""
    from RVC.lite_base import base_projection
    from RVC.lite_data import build_dataset

    projection = base_projection(base) if base is not None else None
    return build_dataset(clips, content, dims, progress, projection)


def replay_set(recipe: Recipe, path: Path = REPLAY_PATH) -> dict[str, np.ndarray] | None:
    if not recipe.replay_share:
        return None
    if not path.is_file():
        raise FileNotFoundError(f"the recipe {recipe.name} replays the base's speakers, but {path.name} is missing "
                                "(python -m RVC.base_corpus replay)")
    from RVC.lite_data import expand

    return expand(dict(np.load(path, allow_pickle=False)))


def fine_tune(data: dict[str, np.ndarray], base: dict[str, Any] | None, recipe: Recipe, *, cfg=None,
              max_seconds: float | None = None, max_steps: int | None = None, **kwargs: Any):
    """Train a voice from the base by `recipe` (`cfg`: a network config of the caller's, e.g. the tiny test one).
    Returns lite_train.train's (network, state)."""
    from RVC.lite_train import train

    if cfg is None:
        if base is None:
            raise ValueError("fine-tuning needs the base, or a network config of the caller's")
        cfg = recipe.config(base)
    replay = replay_set(recipe) if base is not None else None
    return train(data, cfg, max_steps=max_steps or recipe.max_steps,
                 max_seconds=recipe.max_seconds if max_seconds is None else max_seconds, base=base,
                 frozen=recipe.frozen if base is not None else (), replay=replay, replay_share=recipe.replay_share,
                 warmup_steps=recipe.warmup_steps if base is not None else 0, **kwargs)
