"""The NSF-HiFiGAN generator: a sine excitation at the wanted F0 shaped by a HiFi-GAN upsampler.

Module names follow the RVC v2 checkpoint layout (conv_pre, ups, noise_convs, resblocks, conv_post, cond,
m_source.l_linear) so an RVC `dec.*` state dict loads into it, and the lite engine reuses the same class.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

LRELU = 0.1


def _maybe_wn(module: nn.Module, on: bool) -> nn.Module:
    return weight_norm(module) if on else module


class ResBlock(nn.Module):
    """Two dilated convolutions per step, residual around each pair (HiFi-GAN's ResBlock1)."""

    def __init__(self, channels: int, kernel: int, dilations: tuple[int, ...], wn: bool) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(
            _maybe_wn(nn.Conv1d(channels, channels, kernel, dilation=d, padding=d * (kernel - 1) // 2), wn) for d in dilations)
        self.convs2 = nn.ModuleList(
            _maybe_wn(nn.Conv1d(channels, channels, kernel, padding=(kernel - 1) // 2), wn) for _ in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c1, c2 in zip(self.convs1, self.convs2):
            x = x + c2(F.leaky_relu(c1(F.leaky_relu(x, LRELU)), LRELU))
        return x


class SineSource(nn.Module):
    """Harmonic source: a sine at F0 where voiced, noise where not, mixed through one linear layer."""

    def __init__(self, sample_rate: int, amplitude: float = 0.1, noise_std: float = 0.003, hold_f0: bool = False) -> None:
        super().__init__()
        self.sample_rate = sample_rate
        # RVC's checkpoints were trained with each frame's F0 held over its samples; the lite engine interpolates
        self.hold_f0 = hold_f0
        self.amplitude = amplitude
        self.noise_std = noise_std
        self.l_linear = nn.Linear(1, 1)

    def forward(self, f0: torch.Tensor, upp: int) -> torch.Tensor:
        """f0 [B, T] in Hz (0 = unvoiced) → excitation [B, 1, T * upp]."""
        mode = "nearest" if self.hold_f0 else "linear"
        f0 = F.interpolate(f0[:, None].float(), scale_factor=float(upp), mode=mode,
                           **({} if self.hold_f0 else {"align_corners": False}))[:, 0]
        voiced = (f0 > 0).float()
        # phase accumulates in float64: float32 drifts audibly after a few seconds
        step = f0.double() / self.sample_rate
        phase = torch.cumsum(step, dim=1)
        if self.training:
            phase = phase + torch.rand(f0.shape[0], 1, device=f0.device, dtype=phase.dtype)
        elif self.hold_f0:
            # RVC draws a random start phase per harmonic and zeroes the fundamental's: drawn (and unused) here as
            # well, so a seeded run makes the same noise as RVC's own code
            torch.rand(f0.shape[0], 1, device=f0.device)
        sine = torch.sin(2 * math.pi * (phase - torch.floor(phase))).float() * self.amplitude
        noise_amp = voiced * self.noise_std + (1 - voiced) * self.amplitude / 3
        excitation = sine * voiced + noise_amp * torch.randn_like(sine)
        return torch.tanh(self.l_linear(excitation[..., None]))[..., 0][:, None]


class NSFGenerator(nn.Module):
    def __init__(self, in_channels: int, upsample_rates: list[int], upsample_kernels: list[int], initial_channels: int,
                 resblock_kernels: list[int], resblock_dilations: list[list[int]], sample_rate: int,
                 gin_channels: int = 0, wn: bool = False, hold_f0: bool = False) -> None:
        super().__init__()
        self.upp = int(math.prod(upsample_rates))
        self.num_kernels = len(resblock_kernels)
        self.m_source = SineSource(sample_rate, hold_f0=hold_f0)
        self.conv_pre = nn.Conv1d(in_channels, initial_channels, 7, padding=3)
        self.ups = nn.ModuleList()
        self.noise_convs = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        ch = initial_channels
        for i, (u, k) in enumerate(zip(upsample_rates, upsample_kernels)):
            out = initial_channels // (2 ** (i + 1))
            self.ups.append(_maybe_wn(nn.ConvTranspose1d(ch, out, k, u, padding=(k - u) // 2), wn))
            rest = int(math.prod(upsample_rates[i + 1:]))
            if rest > 1:
                self.noise_convs.append(nn.Conv1d(1, out, rest * 2, stride=rest, padding=rest // 2))
            else:
                self.noise_convs.append(nn.Conv1d(1, out, 1))
            for rk, rd in zip(resblock_kernels, resblock_dilations):
                self.resblocks.append(ResBlock(out, rk, tuple(rd), wn))
            ch = out
        self.conv_post = nn.Conv1d(ch, 1, 7, padding=3, bias=False)
        if gin_channels:
            self.cond = nn.Conv1d(gin_channels, initial_channels, 1)

    def forward(self, x: torch.Tensor, f0: torch.Tensor, g: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, C, T] frames, f0 [B, T] Hz → waveform [B, 1, T * upp]."""
        source = self.m_source(f0, self.upp)
        x = self.conv_pre(x)
        if g is not None:
            x = x + self.cond(g)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, LRELU))
            s = self.noise_convs[i](source)
            n = min(x.shape[-1], s.shape[-1])
            x = x[..., :n] + s[..., :n]
            blocks = self.resblocks[i * self.num_kernels:(i + 1) * self.num_kernels]
            x = sum(b(x) for b in blocks) / self.num_kernels
        x = self.conv_post(F.leaky_relu(x))
        return torch.tanh(x)


def fold_weight_norm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Turn `name.weight_g` + `name.weight_v` pairs (torch's old weight_norm) into plain `name.weight`."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.endswith(".weight_g"):
            continue
        if key.endswith(".weight_v"):
            base = key[: -len(".weight_v")]
            g = state[base + ".weight_g"].float()
            v = value.float()
            if torch.broadcast_shapes(g.shape, v.shape) != v.shape:  # g * v must not grow past v (a crafted file's g)
                raise ValueError(f"{base}: weight_g {tuple(g.shape)} does not fit weight_v {tuple(v.shape)}")
            # the norm runs over every axis but the one g keeps (g's axes of size > 1)
            keep = [i for i, s in enumerate(g.shape) if s > 1] or [0]
            dims = [i for i in range(v.dim()) if i not in keep]
            out[base + ".weight"] = g * v / v.norm(dim=dims, keepdim=True).clamp_min(1e-12)
            continue
        out[key] = value
    return out


def split_weight_norm(state: dict[str, torch.Tensor], names: list[str]) -> dict[str, torch.Tensor]:
    """The inverse, for writing checkpoints in the weight_g/weight_v layout (dim 0 kept)."""
    out = dict(state)
    for base in names:
        w = out.pop(base + ".weight")
        dims = list(range(1, w.dim()))
        g = w.norm(dim=dims, keepdim=True)
        out[base + ".weight_g"] = g
        out[base + ".weight_v"] = w.clone()
    return out
