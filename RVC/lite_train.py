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

    def __init__(self, data: dict[str, np.ndarray], frames: int, device: torch.device, own_share: float = 0.0) -> None:
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
        self.own_share = own_share
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
        if self.own_share > 0 and len(self.streams) > 1:
            lowered = torch.randint(1, len(self.streams), (batch, 1), device=self.device)
            pick = torch.where(torch.rand(batch, 1, device=self.device) < self.own_share, 0, lowered)
        return self.streams[pick, c_idx], self.f0[f_idx], self.audio[a_idx]


def train(data: dict[str, np.ndarray], cfg: LiteConfig, *, max_steps: int, max_seconds: float | None = None,
          device: str | None = None, progress: Progress | None = None, report_every: int = 50,
          resume: dict | None = None, seed: int = 0, bf16: bool = False,
          state_hook: dict | None = None, base: dict | None = None, frozen: tuple[str, ...] = (),
          replay: dict[str, np.ndarray] | None = None, replay_share: float = 0.0,
          warmup_steps: int = 0) -> tuple[LiteNet, dict]:
    """Returns the trained network and a state to resume from; `state_hook["state_fn"](step)` gives that state mid-run.

    `base`: the pretrained base (RVC/lite_base.py) to start from; its config decides the network's shape.
    `frozen`: names of the generator's parts (prefixes: "inp", "blocks", "dec.ups" ...) kept as they start.
    `replay`: a set of other speakers (the base's) of which `replay_share` of every batch's windows are drawn.
    `warmup_steps`: the learning rate rises linearly over these first steps (Adam's first steps from fresh moments
    move every weight by about the full rate at once, which a pretrained network does not survive unharmed).
    `max_seconds` is a budget, not a cue: a step that would end past it is not started. Progress is reported
    after the first step, every `report_every` steps and at the last one."""
    torch.manual_seed(seed)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    net = LiteNet(cfg, wn=True).to(dev)
    disc = Discriminators(cfg.disc_channels).to(dev)
    if base is not None and not resume:
        net.load_state_dict({k: v.float() for k, v in base["net"].items()})
        disc.load_state_dict({k: v.float() for k, v in base["disc"].items()})
    mel = LogMel().to(dev)
    for name, param in net.named_parameters():
        if frozen and name.startswith(frozen):
            param.requires_grad_(False)
    trainable = [p for p in net.parameters() if p.requires_grad]
    if not trainable:
        raise ValueError(f"freezing {frozen} leaves nothing to train")
    opt_g = torch.optim.AdamW(trainable, cfg.learning_rate, betas=(0.8, 0.99))
    opt_d = torch.optim.AdamW(disc.parameters(), cfg.learning_rate, betas=(0.8, 0.99))
    step = 0
    if resume:
        net.load_state_dict(resume["net"])
        disc.load_state_dict(resume["disc"])
        opt_g.load_state_dict(resume["opt_g"])
        opt_d.load_state_dict(resume["opt_d"])
        step = int(resume["step"])
    # a resumed run has its moments back: no second warm-up
    schedulers = [torch.optim.lr_scheduler.LambdaLR(o, lambda done: min(1.0, (done + 1) / warmup_steps))
                  for o in ((opt_g, opt_d) if cfg.adversarial else (opt_g,))] if warmup_steps > 0 and not resume else []
    batches = Batches(data, cfg.segment_frames, dev, cfg.own_content)
    replayed = Batches(replay, cfg.segment_frames, dev, cfg.own_content) if replay is not None and replay_share > 0 else None
    n_replay = min(cfg.batch_size - 1, round(cfg.batch_size * replay_share)) if replayed is not None else 0

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
    zero = torch.zeros((), device=dev)
    first_step = step
    first_seconds = slowest = 0.0  # the first step also builds kernels, so it is kept apart from the others

    def report() -> None:
        nonlocal losses
        losses = {"mel": mel_loss.item(), "adv": float(adv.detach()), "fm": float(fm.detach()), "disc": loss_d.item()}
        if progress is not None:
            progress(step, max_steps, time.perf_counter() - t0, losses)

    while step < max_steps:
        if max_seconds is not None and step > first_step:
            # a step that would end past the budget is not started: the slowest one so far stands for the next
            upcoming = slowest if step > first_step + 1 else first_seconds
            if time.perf_counter() - t0 + upcoming > max_seconds:
                break
        step_start = time.perf_counter()
        content, f0, real = batches.sample(cfg.batch_size - n_replay)
        if replayed is not None and n_replay:
            more = replayed.sample(n_replay)
            content, f0, real = torch.cat([content, more[0]]), torch.cat([f0, more[1]]), torch.cat([real, more[2]])
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=mixed):
            fake = net(content, f0).float()
            n = min(fake.shape[-1], real.shape[-1])
            fake, real = fake[..., :n], real[..., :n]
            loss_d = discriminator_loss(disc(real), disc(fake.detach())) if cfg.adversarial else zero
        if cfg.adversarial:
            opt_d.zero_grad(set_to_none=True)
            if torch.isfinite(loss_d):
                loss_d.backward()
                opt_d.step()

        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=mixed):
            mel_loss = F.l1_loss(mel(fake), mel(real))
            adv, fm = generator_losses(disc(real), disc(fake)) if cfg.adversarial else (zero, zero)
            loss_g = cfg.mel_weight * mel_loss + adv + 2 * fm
        opt_g.zero_grad(set_to_none=True)
        if torch.isfinite(loss_g):
            loss_g.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1000.0)
            opt_g.step()
        else:
            bad_steps += 1
            if bad_steps > 20 and mixed:
                mixed = False
                print("non-finite losses under bf16: continuing in float32", flush=True)
        step += 1
        for scheduler in schedulers:
            scheduler.step()
        if step == first_step + 1 or step % report_every == 0 or step == max_steps:
            report()  # inside the step's time: a report may write a checkpoint
        seconds = time.perf_counter() - step_start  # the isfinite checks wait for the GPU, so this is the step's real time
        if step == first_step + 1:
            first_seconds = seconds
        else:
            slowest = max(slowest, seconds)
    if step > first_step and not (step == first_step + 1 or step % report_every == 0 or step == max_steps):
        report()  # stopped by the budget between two reports: the last step is reported too
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


def export_base(net: LiteNet, disc_state: dict, data: dict[str, np.ndarray], path: Path, *, steps: int,
                seconds: float) -> Path:
    """The pretrained base (RVC/lite_base.py): generator and discriminators as trained (weight norm unfolded, so
    fine-tuning resumes them as they were), float16, and the content projection every voice must share."""
    from RVC.lite_base import BASE_FORMAT

    half = lambda sd: {k: v.detach().cpu().to(torch.float16) for k, v in sd.items()}
    artifact = {
        "format": BASE_FORMAT,
        "version": ARTIFACT_VERSION,
        "config": net.cfg.to_dict(),
        "net": half(net.state_dict()),
        "disc": half(disc_state),
        "pca_mean": torch.from_numpy(np.asarray(data["pca_mean"], np.float32)),
        "pca_basis": torch.from_numpy(np.asarray(data["pca_basis"], np.float32)),
        "trained_steps": steps,
        "trained_seconds": seconds,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(artifact, tmp)
    tmp.replace(path)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="a set from lite_data.build_dataset (.npz, compact or not)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=100_000)
    ap.add_argument("--seconds", type=float, default=480, help="the training budget")
    ap.add_argument("--base", default="", help="fine-tune from this base (RVC/base/lite-base.pt)")
    ap.add_argument("--as-base", action="store_true",
                    help="write a base (generator and discriminators) to fine-tune from; with --base, the base trained on")
    ap.add_argument("--parts-mib", type=float, default=0,
                    help="also cut --out into parts of at most this many MiB beside it (RVC/file_parts.py)")
    ap.add_argument("--minutes", type=float, default=0, help="train on the set's first clips only, this much speech")
    ap.add_argument("--batch", type=int, default=0, help="windows per step (default: the config's)")
    ap.add_argument("--mel-only", action="store_true", help="train without the discriminators")
    ap.add_argument("--mel-weight", type=float, default=0, help="weight of the mel loss (default: the config's)")
    ap.add_argument("--own-content", type=float, default=None,
                    help="share of windows fed the clip's own content rather than a lowered copy's (default: the config's)")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--bf16", action="store_true")
    args = ap.parse_args()
    from RVC.lite_base import load_base
    from RVC.lite_data import expand, first_clips

    if args.threads:
        torch.set_num_threads(args.threads)
    data = expand(dict(np.load(args.data, allow_pickle=False)))
    if args.minutes:
        data = first_clips(data, args.minutes)
    base = load_base(Path(args.base)) if args.base else None
    if args.base and base is None:
        raise SystemExit(f"no base model at {args.base}")
    cfg = LiteConfig.from_dict(base["config"]) if base else (LiteConfig.tiny() if args.tiny else LiteConfig())
    cfg.content_dims = int(data["content"].shape[1])
    if args.batch:
        cfg.batch_size = args.batch
    if args.mel_only:
        cfg.adversarial = False
    if args.mel_weight:
        cfg.mel_weight = args.mel_weight
    if args.own_content is not None:
        cfg.own_content = args.own_content
    if base is not None and not np.allclose(base["pca_basis"].numpy(), data["pca_basis"]):
        raise SystemExit("the set was not projected with this base's projection (RVC/lite_base.py prepare)")
    t0 = time.perf_counter()

    def show(step: int, total: int, elapsed: float, losses: dict) -> None:
        print(f"step {step} {elapsed:.0f}s " + " ".join(f"{k}={v:.3f}" for k, v in losses.items()), flush=True)

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    where = torch.cuda.get_device_name() if device == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    print(f"training on {where}: {len(data['f0']) / 6000:.1f} min of speech, batch {cfg.batch_size}"
          + (f", from the base {args.base}" if base else ""), flush=True)
    net, state = train(data, cfg, max_steps=args.steps, max_seconds=args.seconds, progress=show, report_every=250,
                       bf16=args.bf16, base=base, device=device, seed=args.seed)
    seconds = time.perf_counter() - t0
    if args.as_base:
        # a base trained on across sessions keeps count of every step and second it has had
        before = (int(base.get("trained_steps", 0)), float(base.get("trained_seconds", 0.0))) if base else (0, 0.0)
        export_base(net, state["disc"], data, Path(args.out), steps=before[0] + state["step"], seconds=before[1] + seconds)
        if args.parts_mib:
            from RVC.file_parts import split

            out = Path(args.out)
            manifest = split(out, out.parent / f"{out.name}.parts", int(args.parts_mib * 2**20))
            print(f"{out.name} in {len(manifest['parts'])} parts under {out.name}.parts/", flush=True)
    else:
        export(net, data, Path(args.out), steps=state["step"], seconds=seconds)
    print(f"trained {state['step']} steps in {seconds:.0f} s on {where}", flush=True)


if __name__ == "__main__":
    main()
