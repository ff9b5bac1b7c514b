"""The lite engine's network: content features + F0 → the target speaker's waveform, in one generator.

A small dilated-convolution stack turns speaker-independent Whisper content (with a coarse pitch
embedding) into a latent frame sequence; the NSF-HiFiGAN generator voices it at the wanted F0. Both train
together on the admin's recordings against a mel loss and two discriminators (periods, spectrograms),
so the output carries the speaker's timbre rather than an average of it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from RVC.features import HOP, RATE
from RVC.nsf import NSFGenerator


@dataclass
class LiteConfig:
    content_dims: int = 128
    hidden: int = 256
    latent: int = 192
    blocks: tuple[int, ...] = (1, 2, 4, 8, 1, 2)
    upsample_rates: list[int] = field(default_factory=lambda: [10, 4, 2, 2])
    upsample_kernels: list[int] = field(default_factory=lambda: [20, 8, 4, 4])
    initial_channels: int = 256
    resblock_kernels: list[int] = field(default_factory=lambda: [3, 7, 11])
    resblock_dilations: list[list[int]] = field(default_factory=lambda: [[1, 3, 5], [1, 3, 5], [1, 3, 5]])
    disc_channels: int = 32
    segment_frames: int = 64
    batch_size: int = 24
    learning_rate: float = 2e-4
    mel_weight: float = 45.0
    adversarial: bool = True  # False: the mel loss alone (a CPU fine-tune's steps are too dear to spend on discriminators)
    own_content: float = 0.0  # share of training windows fed the clip's own content; 0: own and lowered copies alike

    @staticmethod
    def tiny() -> "LiteConfig":
        """For tests on two CPU cores: same shapes of everything, a fraction of the width."""
        return LiteConfig(hidden=32, latent=16, blocks=(1, 2), initial_channels=32, resblock_kernels=[3],
                          resblock_dilations=[[1]], disc_channels=4, segment_frames=16, batch_size=2)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["blocks"] = list(self.blocks)
        return d

    @staticmethod
    def from_dict(d: dict) -> "LiteConfig":
        d = dict(d)
        d["blocks"] = tuple(d["blocks"])
        return LiteConfig(**d)


def coarse_pitch(f0: torch.Tensor) -> torch.Tensor:
    """Hz → 255 mel-spaced bins (0 = unvoiced), the pitch vocabulary the latent stack conditions on."""
    lo, hi = 1127 * np.log(1 + 50 / 700), 1127 * np.log(1 + 1100 / 700)
    mel = 1127 * torch.log1p(f0 / 700)
    bins = ((mel - lo) * 254 / (hi - lo) + 1).round().clamp(1, 255).long()
    return torch.where(f0 > 0, bins, torch.zeros_like(bins))


class _Block(nn.Module):
    def __init__(self, ch: int, dilation: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(ch, ch, 5, dilation=dilation, padding=2 * dilation)
        self.norm = nn.GroupNorm(1, ch)
        self.proj = nn.Conv1d(ch, ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.proj(F.gelu(self.norm(self.conv(x))))


class LiteNet(nn.Module):
    def __init__(self, cfg: LiteConfig, wn: bool = False) -> None:
        super().__init__()
        self.cfg = cfg
        self.inp = nn.Conv1d(cfg.content_dims, cfg.hidden, 3, padding=1)
        self.pitch = nn.Embedding(256, cfg.hidden)
        self.blocks = nn.ModuleList(_Block(cfg.hidden, d) for d in cfg.blocks)
        self.out = nn.Conv1d(cfg.hidden, cfg.latent, 1)
        self.dec = NSFGenerator(cfg.latent, cfg.upsample_rates, cfg.upsample_kernels, cfg.initial_channels,
                                cfg.resblock_kernels, cfg.resblock_dilations, RATE, wn=wn)

    def forward(self, content: torch.Tensor, f0: torch.Tensor) -> torch.Tensor:
        """content [B, T/2, D] at 50 Hz, f0 [B, T] Hz at 100 Hz → waveform [B, T * 160]."""
        frames = f0.shape[1]
        c = content.transpose(1, 2).repeat_interleave(2, dim=-1)
        if c.shape[-1] < frames:
            c = F.pad(c, (0, frames - c.shape[-1]), mode="replicate")
        c = c[..., :frames]
        if self.training:
            c = F.dropout(c, 0.1)
        x = self.inp(c) + self.pitch(coarse_pitch(f0)).transpose(1, 2)
        for block in self.blocks:
            x = block(x)
        return self.dec(self.out(x), f0)[:, 0]


# ---- training parts: discriminators and losses ----


def _through_stack(convs: nn.ModuleList, post: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """A discriminator's conv stack: its score and every layer's features (for the feature-matching loss)."""
    feats = []
    for conv in convs:
        x = F.leaky_relu(conv(x), 0.1)
        feats.append(x)
    x = post(x)
    feats.append(x)
    return x.flatten(1), feats


class _PeriodDisc(nn.Module):
    def __init__(self, period: int, ch: int) -> None:
        super().__init__()
        self.period = period
        chans = [1, ch, ch * 4, ch * 8, ch * 8]
        self.convs = nn.ModuleList(
            weight_norm(nn.Conv2d(a, b, (5, 1), (3, 1) if i < 3 else 1, padding=(2, 0))) for i, (a, b) in enumerate(zip(chans, chans[1:])))
        self.post = weight_norm(nn.Conv2d(chans[-1], 1, (3, 1), padding=(1, 0)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        b, t = x.shape
        if t % self.period:
            x = F.pad(x, (0, self.period - t % self.period), mode="reflect")
        x = x.view(b, 1, -1, self.period)
        return _through_stack(self.convs, self.post, x)


class _SpecDisc(nn.Module):
    def __init__(self, n_fft: int, ch: int) -> None:
        super().__init__()
        self.n_fft = n_fft
        self.convs = nn.ModuleList([weight_norm(nn.Conv2d(1, ch, (3, 9), padding=(1, 4)))] + [
            weight_norm(nn.Conv2d(ch, ch, (3, 9), stride=(1, 2), padding=(1, 4))) for _ in range(3)] + [
            weight_norm(nn.Conv2d(ch, ch, (3, 3), padding=1))])
        self.post = weight_norm(nn.Conv2d(ch, 1, (3, 3), padding=1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        window = torch.hann_window(self.n_fft, device=x.device)
        spec = torch.stft(x.float(), self.n_fft, self.n_fft // 4, window=window, return_complex=True).abs()
        x = spec[:, None].transpose(2, 3)
        return _through_stack(self.convs, self.post, x)


class Discriminators(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.discs = nn.ModuleList([_PeriodDisc(p, ch) for p in (2, 3, 5, 7, 11)] + [_SpecDisc(n, ch) for n in (256, 512, 1024)])

    def forward(self, x: torch.Tensor) -> list[tuple[torch.Tensor, list[torch.Tensor]]]:
        return [d(x) for d in self.discs]


def mel_filters(n_fft: int = 1024, n_mels: int = 80, fmin: float = 0.0, fmax: float = RATE / 2) -> np.ndarray:
    """Triangular filters on the HTK mel scale, area-normalised."""
    mel = lambda f: 2595 * np.log10(1 + f / 700)
    hz = lambda m: 700 * (10 ** (m / 2595) - 1)
    points = hz(np.linspace(mel(fmin), mel(fmax), n_mels + 2))
    bins = np.linspace(0, RATE / 2, n_fft // 2 + 1)
    fb = np.zeros((n_mels, len(bins)), np.float32)
    for i in range(n_mels):
        lo, mid, hi = points[i:i + 3]
        fb[i] = np.maximum(0, np.minimum((bins - lo) / (mid - lo), (hi - bins) / (hi - mid)))
        fb[i] *= 2 / (hi - lo)
    return fb


class LogMel(nn.Module):
    def __init__(self, n_fft: int = 1024, win: int = 640) -> None:
        super().__init__()
        self.n_fft, self.win = n_fft, win
        self.register_buffer("fb", torch.from_numpy(mel_filters(n_fft)), persistent=False)
        self.register_buffer("window", torch.hann_window(win), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(x.float(), self.n_fft, HOP, self.win, window=self.window, return_complex=True).abs()
        with torch.autocast(x.device.type, enabled=False):
            return torch.log(torch.clamp(self.fb @ spec, min=1e-5))


def discriminator_loss(real: list, fake: list) -> torch.Tensor:
    return sum(torch.mean((1 - r[0]) ** 2) + torch.mean(f[0] ** 2) for r, f in zip(real, fake))


def generator_losses(real: list, fake: list) -> tuple[torch.Tensor, torch.Tensor]:
    adv = sum(torch.mean((1 - f[0]) ** 2) for f in fake)
    fm = sum(F.l1_loss(ff, rf.detach()) for r, f in zip(real, fake) for rf, ff in zip(r[1], f[1]))
    return adv, fm
