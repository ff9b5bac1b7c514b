"""Training the lite network on one person's prepared video, with checkpoints to resume from."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.nn import functional as F

from geneface.lite.data import KEEP_TOP, Prepared, hide_mouth
from geneface.lite.model import LipSync, LiteConfig

# called every `report_every` steps with (step, loss, checkpoint path or None); may raise to stop training
Progress = Callable[[int, float, str | None], None]


def _device(gpu: int | None) -> torch.device:
    if gpu is not None and torch.cuda.is_available():
        return torch.device(f"cuda:{gpu}")
    return torch.device("cpu")


class Trainer:
    def __init__(self, prepared: Prepared, config: LiteConfig, *, gpu: int | None = None, batch: int = 32,
                 lr: float = 2e-3, seed: int = 0) -> None:
        if prepared.size != config.size:
            raise ValueError("prepared crops and model size differ")
        self.config = config
        self.device = _device(gpu)
        torch.manual_seed(seed)
        self.rng = np.random.default_rng(seed)
        self.model = LipSync(config).to(self.device)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=lr, weight_decay=1e-4)
        self.batch = batch
        self.step = 0
        # the whole video's crops fit on the device as uint8: no data loader, no copies per step
        self.crops = torch.from_numpy(prepared.crops).permute(0, 3, 1, 2).contiguous().to(self.device)
        self.windows = torch.from_numpy(prepared.windows).to(self.device)
        self.n = len(prepared.crops)
        self.partners = prepared.partners
        rows = torch.linspace(0, 1, config.size, device=self.device)
        # the mouth counts more than the cheeks: it is what viewers watch
        self.weight = (1 + 3 * (rows > KEEP_TOP).float())[None, None, :, None]

    def load(self, path: str | Path) -> None:
        state = torch.load(path, map_location=self.device, weights_only=True)
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])
        self.step = int(state["step"])
        self.rng = np.random.default_rng(int(state["step"]) + 1)

    def save(self, path: str | Path) -> str:
        path = Path(path)
        tmp = path.with_suffix(".tmp")
        # plain Python numbers only: the checkpoint is read back by torch's weights-only loader, which refuses numpy's
        config = {k: (v.item() if hasattr(v, "item") else v) for k, v in self.config.to_dict().items()}
        torch.save({"model": self.model.state_dict(), "opt": self.opt.state_dict(), "step": int(self.step),
                    "config": config}, tmp)
        tmp.replace(path)  # a crash mid-write never leaves a broken checkpoint behind
        return str(path)

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        i = self.rng.integers(0, self.n, self.batch)
        # a reference from elsewhere in the video with the same pose, so it can't hand over this frame's mouth
        j = self.partners[i, self.rng.integers(0, self.partners.shape[1], self.batch)]
        target = self.crops[torch.from_numpy(i).to(self.device)].float() / 255
        ref = self.crops[torch.from_numpy(j).to(self.device)].float() / 255
        # shift each reference by a pixel or two: how the crop sits must carry no hint of the mouth
        dy, dx = (int(v) for v in self.rng.integers(-2, 3, 2))
        ref = torch.roll(ref, shifts=(dy, dx), dims=(2, 3))
        return target, ref, self.windows[torch.from_numpy(i).to(self.device)]

    def train_step(self) -> float:
        self.model.train()
        target, ref, mel = self._batch()
        pred = self.model(hide_mouth(ref), mel)
        loss = (F.l1_loss(pred, target, reduction="none") * self.weight).mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.step += 1
        return float(loss.detach())

    def run(self, steps: int, *, checkpoint: str | Path | None = None, checkpoint_every: int = 200,
            report_every: int = 25, on_progress: Progress | None = None) -> float:
        """Train up to `steps` in total (counting steps done before a resume); returns the last smoothed loss."""
        smooth = None
        lr0 = self.opt.param_groups[0]["lr"] if self.step == 0 else None
        base = lr0 or self.opt.defaults["lr"]
        while self.step < steps:
            # cosine decay over the whole run: late steps refine instead of jumping around
            for g in self.opt.param_groups:
                g["lr"] = float(base * (0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * self.step / max(steps, 1)))))  # no numpy scalar in a checkpoint
            loss = self.train_step()
            smooth = loss if smooth is None else 0.9 * smooth + 0.1 * loss
            saved = None
            if checkpoint and (self.step % checkpoint_every == 0 or self.step == steps):
                saved = self.save(checkpoint)
            if on_progress and (self.step % report_every == 0 or saved or self.step == steps):
                on_progress(self.step, smooth, saved)
        return float(smooth or 0.0)


def timed_run(trainer: Trainer, steps: int) -> float:
    t0 = time.perf_counter()
    trainer.run(steps)
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0
