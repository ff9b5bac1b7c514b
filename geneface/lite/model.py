"""The lite lip-sync network: (reference crop with the mouth hidden, 160 ms of mel) → the lower-face crop.

A small U-Net, person-specific: the look of the lips, teeth and chin is learnt into its weights; the
visible top of the reference crop gives the head pose and light; the sound decides the mouth. In
training the reference is another frame of the video with nearly the same pose, at least half a second
away: had the network seen the target frame itself, even masked, it could learn "this exact frame → that
mouth" for the few thousand frames it knows and ignore the sound. The sound enters at every scale of the
decoder as a per-channel scale and shift.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

from geneface.lite.data import MEL_BINS


@dataclass(frozen=True)
class LiteConfig:
    size: int = 96  # crop side in pixels
    width: int = 24  # channels at full resolution, doubled at each of 3 downsamplings
    audio_dim: int = 96
    audio_hidden: int = 32

    def to_dict(self) -> dict:
        return asdict(self)


TINY = LiteConfig(size=32, width=8, audio_dim=32, audio_hidden=16)


def _block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, inplace=True))


class AudioEncoder(nn.Module):
    """Mel window → one vector. Narrow on purpose: one person's few minutes of speech are easy to memorise."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(MEL_BINS, hidden, 3, 1, 1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv1d(hidden, hidden, 3, 2, 1), nn.LeakyReLU(0.2, inplace=True),
        )
        self.drop = nn.Dropout(0.2)
        self.out = nn.Linear(hidden * 2, dim)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:  # (B, 80, T)
        if self.training:
            # noise on the features: what generalises to a new sentence is the shape, not the exact values
            mel = mel + 0.3 * torch.randn_like(mel)
        h = self.net(mel)
        return self.out(self.drop(torch.cat([h.mean(-1), h.amax(-1)], dim=1)))


class Film(nn.Module):
    def __init__(self, cond_dim: int, channels: int) -> None:
        super().__init__()
        self.to_scale_shift = nn.Linear(cond_dim, channels * 2)

    def forward(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        scale, shift = self.to_scale_shift(a).chunk(2, dim=1)
        return x * (1 + scale[..., None, None]) + shift[..., None, None]


class LipSync(nn.Module):
    def __init__(self, config: LiteConfig) -> None:
        super().__init__()
        self.config = config
        w = config.width
        self.audio = AudioEncoder(config.audio_dim, config.audio_hidden)
        self.e0 = _block(5, w)  # RGB + where each pixel is (see forward)
        self.e1 = _block(w, w * 2, 2)
        self.e2 = _block(w * 2, w * 4, 2)
        self.e3 = _block(w * 4, w * 8, 2)
        self.mid = _block(w * 8, w * 8)
        # the sound plus a summary of the whole reference: pixels far below the visible nose still learn
        # the light and pose, which convolutions alone would not carry that far at 96 px
        cond = config.audio_dim + w * 8
        self.f3 = Film(cond, w * 8)
        self.d2 = _block(w * 8 + w * 4, w * 4)
        self.f2 = Film(cond, w * 4)
        self.d1 = _block(w * 4 + w * 2, w * 2)
        self.f1 = Film(cond, w * 2)
        self.d0 = _block(w * 2 + w, w)
        self.out = nn.Conv2d(w, 3, 3, 1, 1)

    def forward(self, reference: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:
        """Reference crops (B, 3, S, S) in 0..1, mel (B, 80, T) → (B, 3, S, S) in 0..1."""
        a = self.audio(mel)
        # where each pixel sits in the crop: below the visible nose the input is all zeros, and without
        # coordinates every such pixel would look the same to the convolutions and be drawn the same
        b, _, h, w = reference.shape
        ys = torch.linspace(-1, 1, h, device=reference.device).view(1, 1, h, 1).expand(b, 1, h, w)
        xs = torch.linspace(-1, 1, w, device=reference.device).view(1, 1, 1, w).expand(b, 1, h, w)
        x0 = self.e0(torch.cat([reference, ys, xs], dim=1))
        x1 = self.e1(x0)
        x2 = self.e2(x1)
        x3 = self.e3(x2)
        a = torch.cat([a, x3.mean(dim=(2, 3))], dim=1)
        h = self.f3(self.mid(x3), a)
        h = self.f2(self.d2(torch.cat([_up(h, x2), x2], 1)), a)
        h = self.f1(self.d1(torch.cat([_up(h, x1), x1], 1)), a)
        h = self.d0(torch.cat([_up(h, x0), x0], 1))
        return torch.sigmoid(self.out(h))


def _up(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="nearest")
