"""Training the lite engine on a prepared set (lite_data.build_dataset): torch and numpy only, GPU when present.

Runs inside a job (RVC/jobs.py) or on its own on a GPU machine:
    python -m RVC.lite_train --data set.npz --out voice.lite.pt --seconds 480
"""
from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.utils import parametrize

from RVC.features import HOP
from RVC.lite_model import Discriminators, LiteConfig, LiteNet, LogMel, discriminator_loss, generator_losses

ARTIFACT_VERSION = 1
# (step, max_steps, elapsed seconds, losses) → called every `report_every` steps; may raise to stop
Progress = Callable[[int, int, float, dict], None]


class Batches:
    """Random fixed-length windows over the concatenated clips, all on the training device."""

    def __init__(self, data: dict[str, np.ndarray], frames: int, device: torch.device) -> None:
        n = (len(data["f0"]) // 2) * 2
        self.audio = torch.from_numpy(data["audio"][: n * HOP].astype(np.float32) / 32767).to(device)
        self.f0 = torch.from_numpy(data["f0"][:n]).to(device)
        scale = float(data.get("content_scale", 1.0))
        low = data["content_low"]
        low = low[None] if low.ndim == 2 else low  # sets made before several copies had one
        # [1 + copies, N/2, D]: the clip's own content, then each lowered copy's
        streams = np.concatenate([data["content"][None, : n // 2], low[:, : n // 2]])
        self.streams = torch.from_numpy(streams.astype(np.float32) * scale).to(device)
        self.frames = frames
        self.device = device
        self.half_frames = n // 2
        if self.half_frames <= frames // 2:
            raise ValueError("not enough audio to train on")

    def sample(self, batch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        half = self.frames // 2
        start = torch.randint(0, self.half_frames - half, (batch,), device=self.device)
        c_idx = start[:, None] + torch.arange(half, device=self.device)
        f_idx = 2 * start[:, None] + torch.arange(self.frames, device=self.device)
        a_idx = 2 * HOP * start[:, None] + torch.arange(self.frames * HOP, device=self.device)
        # most windows see a lowered copy's content: the timbre must come from the network, not the input
        pick = torch.randint(0, len(self.streams), (batch, 1), device=self.device)
        return self.streams[pick, c_idx], self.f0[f_idx], self.audio[a_idx]


def train(data: dict[str, np.ndarray], cfg: LiteConfig, *, max_steps: int, max_seconds: float | None = None,
          device: str | None = None, progress: Progress | None = None, report_every: int = 50,
          resume: dict | None = None, seed: int = 0, bf16: bool = False,
          state_hook: dict | None = None) -> tuple[LiteNet, dict]:
    """Returns the trained network and a state to resume from; `state_hook["state_fn"](step)` gives that state mid-run."""
    torch.manual_seed(seed)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    net = LiteNet(cfg, wn=True).to(dev)
    disc = Discriminators(cfg.disc_channels).to(dev)
    mel = LogMel().to(dev)
    opt_g = torch.optim.AdamW(net.parameters(), cfg.learning_rate, betas=(0.8, 0.99))
    opt_d = torch.optim.AdamW(disc.parameters(), cfg.learning_rate, betas=(0.8, 0.99))
    step = 0
    if resume:
        net.load_state_dict(resume["net"])
        disc.load_state_dict(resume["disc"])
        opt_g.load_state_dict(resume["opt_g"])
        opt_d.load_state_dict(resume["opt_d"])
        step = int(resume["step"])
    batches = Batches(data, cfg.segment_frames, dev)

    def snapshot(at: int) -> dict:
        return {"net": net.state_dict(), "disc": disc.state_dict(), "opt_g": opt_g.state_dict(),
                "opt_d": opt_d.state_dict(), "step": at}

    if state_hook is not None:
        state_hook["state_fn"] = snapshot
    t0 = time.perf_counter()
    losses: dict[str, float] = {}
    net.train()
    # bf16 is off by default: on an H100 it gave no more steps per minute and a higher mel loss than float32.
    # A run of non-finite losses turns it off for good.
    mixed = bf16 and dev.type == "cuda" and torch.cuda.is_bf16_supported()
    bad_steps = 0
    while step < max_steps:
        content, f0, real = batches.sample(cfg.batch_size)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=mixed):
            fake = net(content, f0).float()
            n = min(fake.shape[-1], real.shape[-1])
            fake, real = fake[..., :n], real[..., :n]
            loss_d = discriminator_loss(disc(real), disc(fake.detach()))
        opt_d.zero_grad(set_to_none=True)
        if torch.isfinite(loss_d):
            loss_d.backward()
            opt_d.step()

        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=mixed):
            mel_loss = F.l1_loss(mel(fake), mel(real))
            adv, fm = generator_losses(disc(real), disc(fake))
            loss_g = cfg.mel_weight * mel_loss + adv + 2 * fm
        opt_g.zero_grad(set_to_none=True)
        if torch.isfinite(loss_g):
            loss_g.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1000.0)
            opt_g.step()
        else:
            bad_steps += 1
            if bad_steps > 20 and mixed:
                mixed = False
                print("non-finite losses under bf16: continuing in float32", flush=True)
        step += 1

        elapsed = time.perf_counter() - t0
        out_of_time = max_seconds is not None and elapsed >= max_seconds
        if step % report_every == 0 or step == max_steps or out_of_time:
            losses = {"mel": mel_loss.item(), "adv": float(adv.detach()), "fm": float(fm.detach()), "disc": loss_d.item()}
            if progress is not None:
                progress(step, max_steps, elapsed, losses)
        if out_of_time:
            break
    return net, {**snapshot(step), "losses": losses}


def export(net: LiteNet, data: dict[str, np.ndarray], path: Path, *, steps: int, seconds: float) -> Path:
    """A self-contained artifact: folded weights, config, content projection and the speaker's pitch range."""
    plain = copy.deepcopy(net).cpu().eval()
    for module in plain.modules():
        if parametrize.is_parametrized(module):
            for name in list(module.parametrizations.keys()):
                parametrize.remove_parametrizations(module, name, leave_parametrized=True)
    artifact = {
        "format": "doppel-lite",
        "version": ARTIFACT_VERSION,
        "config": net.cfg.to_dict(),
        # half precision on disk: a third of the size, and inference upcasts (no audible difference)
        "weights": {k: v.detach().to(torch.float16) for k, v in plain.state_dict().items()},
        "pca_mean": torch.from_numpy(np.asarray(data["pca_mean"], np.float32)),
        "pca_basis": torch.from_numpy(np.asarray(data["pca_basis"], np.float32)),
        "f0_stats": [float(x) for x in data["f0_stats"]],
        "trained_steps": steps,
        "trained_seconds": seconds,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(artifact, tmp)
    tmp.replace(path)  # a reader never sees half an artifact
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=100_000)
    ap.add_argument("--seconds", type=float, default=480)
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--bf16", action="store_true")
    args = ap.parse_args()
    data = dict(np.load(args.data, allow_pickle=False))
    data = {k: v for k, v in data.items()}
    cfg = LiteConfig.tiny() if args.tiny else LiteConfig()
    cfg.content_dims = int(data["content"].shape[1])
    t0 = time.perf_counter()

    def show(step: int, total: int, elapsed: float, losses: dict) -> None:
        print(f"step {step} {elapsed:.0f}s " + " ".join(f"{k}={v:.3f}" for k, v in losses.items()), flush=True)

    print(f"training on {torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu'}: "
          f"{len(data['f0']) / 6000:.1f} min of speech", flush=True)
    net, state = train(data, cfg, max_steps=args.steps, max_seconds=args.seconds, progress=show, report_every=250, bf16=args.bf16)
    seconds = time.perf_counter() - t0
    export(net, data, Path(args.out), steps=state["step"], seconds=seconds)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    print(f"trained {state['step']} steps in {seconds:.0f} s on {device}", flush=True)


if __name__ == "__main__":
    main()
