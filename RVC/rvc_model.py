"""RVC v1/v2 inference network, written for doppel from the published architecture (VITS-style prior + flow +
NSF-HiFiGAN); v1 differs only in reading 256-d content instead of 768-d.

Module names mirror the official checkpoint's `weight` dict (enc_p, flow, dec, emb_g), so a user's `.pth`
loads after its weight-norm pairs are folded. Only inference is here: the posterior encoder (enc_q) that
training uses is not, and its keys are ignored.

Checkpoint: {"weight": state dict, "config": [spec_channels, segment_size, inter_channels, hidden_channels,
filter_channels, n_heads, n_layers, kernel_size, p_dropout, resblock, resblock_kernel_sizes,
resblock_dilation_sizes, upsample_rates, upsample_initial_channel, upsample_kernel_sizes, spk_embed_dim,
gin_channels, sr], "f0": 1, "version": "v2", "sr": "40k", "info": ...}
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from core.errors import BadInput, EngineError
from RVC.nsf import NSFGenerator, fold_weight_norm
from RVC.safe_load import OversizedClaim, UnsafeWeights, load_weights

SAMPLE_RATES = {"32k": 32000, "40k": 40000, "48k": 48000}


class ChannelNorm(nn.Module):
    """Layer norm over channels of a [B, C, T] tensor (params named gamma/beta, as in the checkpoints)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x.transpose(1, -1), (x.shape[1],), self.gamma, self.beta, 1e-5).transpose(1, -1)


class RelativeSelfAttention(nn.Module):
    """Multi-head self-attention with learned relative-position terms for offsets within ±window (shared by heads)."""

    def __init__(self, channels: int, heads: int, window: int = 10) -> None:
        super().__init__()
        self.heads, self.window = heads, window
        self.k_channels = channels // heads
        self.conv_q = nn.Conv1d(channels, channels, 1)
        self.conv_k = nn.Conv1d(channels, channels, 1)
        self.conv_v = nn.Conv1d(channels, channels, 1)
        self.conv_o = nn.Conv1d(channels, channels, 1)
        self.emb_rel_k = nn.Parameter(torch.randn(1, 2 * window + 1, self.k_channels) * self.k_channels ** -0.5)
        self.emb_rel_v = nn.Parameter(torch.randn(1, 2 * window + 1, self.k_channels) * self.k_channels ** -0.5)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, c, t = x.shape
        split = lambda y: y.view(b, self.heads, self.k_channels, t).transpose(2, 3)
        q = split(self.conv_q(x)) / math.sqrt(self.k_channels)
        k, v = split(self.conv_k(x)), split(self.conv_v(x))
        # offset j - i of every pair, as an index into the 2w+1 learned offsets; pairs farther apart get none
        offset = torch.arange(t, device=x.device)[None, :] - torch.arange(t, device=x.device)[:, None]
        inside = offset.abs() <= self.window
        index = (offset.clamp(-self.window, self.window) + self.window)
        rel_k = q @ self.emb_rel_k[0].T  # [b, h, t, 2w+1]
        scores = q @ k.transpose(-2, -1) + torch.gather(rel_k, 3, index.expand(b, self.heads, t, t)) * inside
        scores = scores.masked_fill(mask == 0, -1e4)
        p = torch.softmax(scores, dim=-1)
        out = p @ v
        buckets = torch.zeros(b, self.heads, t, 2 * self.window + 1, device=x.device, dtype=p.dtype)
        buckets.scatter_add_(3, index.expand(b, self.heads, t, t), p * inside)
        out = out + buckets @ self.emb_rel_v[0]
        return self.conv_o(out.transpose(2, 3).reshape(b, c, t))


class FeedForward(nn.Module):
    def __init__(self, channels: int, filters: int, kernel: int) -> None:
        super().__init__()
        self.kernel = kernel
        self.conv_1 = nn.Conv1d(channels, filters, kernel)
        self.conv_2 = nn.Conv1d(filters, channels, kernel)

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, ((self.kernel - 1) // 2, self.kernel // 2))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv_1(self._pad(x * mask)))
        return self.conv_2(self._pad(x * mask)) * mask


class AttentionEncoder(nn.Module):
    def __init__(self, channels: int, filters: int, heads: int, layers: int, kernel: int) -> None:
        super().__init__()
        self.attn_layers = nn.ModuleList(RelativeSelfAttention(channels, heads) for _ in range(layers))
        self.norm_layers_1 = nn.ModuleList(ChannelNorm(channels) for _ in range(layers))
        self.ffn_layers = nn.ModuleList(FeedForward(channels, filters, kernel) for _ in range(layers))
        self.norm_layers_2 = nn.ModuleList(ChannelNorm(channels) for _ in range(layers))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        pair_mask = mask.unsqueeze(2) * mask.unsqueeze(-1)
        x = x * mask
        for attn, n1, ffn, n2 in zip(self.attn_layers, self.norm_layers_1, self.ffn_layers, self.norm_layers_2):
            x = n1(x + attn(x, pair_mask))
            x = n2(x + ffn(x, mask))
        return x * mask


class ContentPrior(nn.Module):
    """enc_p: content (768-d in v2, 256-d in v1) + coarse pitch → prior mean and log-scale per frame."""

    def __init__(self, out_channels: int, hidden: int, filters: int, heads: int, layers: int, kernel: int,
                 phone_dim: int = 768) -> None:
        super().__init__()
        self.out_channels, self.hidden = out_channels, hidden
        self.emb_phone = nn.Linear(phone_dim, hidden)
        self.emb_pitch = nn.Embedding(256, hidden)
        self.encoder = AttentionEncoder(hidden, filters, heads, layers, kernel)
        self.proj = nn.Conv1d(hidden, out_channels * 2, 1)

    def forward(self, phone: torch.Tensor, pitch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = (self.emb_phone(phone) + self.emb_pitch(pitch)) * math.sqrt(self.hidden)
        x = F.leaky_relu(x, 0.1).transpose(1, 2)
        mask = torch.ones(x.shape[0], 1, x.shape[2], device=x.device, dtype=x.dtype)
        stats = self.proj(self.encoder(x, mask)) * mask
        m, logs = stats.split(self.out_channels, dim=1)
        return m, logs, mask


class WaveNet(nn.Module):
    """Gated dilated convolutions with a global condition (the flow's coupling network)."""

    def __init__(self, hidden: int, kernel: int, dilation_rate: int, layers: int, gin: int) -> None:
        super().__init__()
        self.hidden, self.layers = hidden, layers
        self.cond_layer = nn.Conv1d(gin, 2 * hidden * layers, 1)
        self.in_layers = nn.ModuleList()
        self.res_skip_layers = nn.ModuleList()
        for i in range(layers):
            d = dilation_rate ** i
            self.in_layers.append(nn.Conv1d(hidden, 2 * hidden, kernel, dilation=d, padding=(kernel * d - d) // 2))
            self.res_skip_layers.append(nn.Conv1d(hidden, 2 * hidden if i < layers - 1 else hidden, 1))

    def forward(self, x: torch.Tensor, mask: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        out = torch.zeros_like(x)
        g = self.cond_layer(g)
        h = self.hidden
        for i, (inp, rs) in enumerate(zip(self.in_layers, self.res_skip_layers)):
            z = inp(x) + g[:, 2 * h * i: 2 * h * (i + 1)]
            acts = torch.tanh(z[:, :h]) * torch.sigmoid(z[:, h:])
            r = rs(acts)
            if i < self.layers - 1:
                x = (x + r[:, :h]) * mask
                out = out + r[:, h:]
            else:
                out = out + r
        return out * mask


class Coupling(nn.Module):
    def __init__(self, channels: int, hidden: int, kernel: int, layers: int, gin: int) -> None:
        super().__init__()
        self.half = channels // 2
        self.pre = nn.Conv1d(self.half, hidden, 1)
        self.enc = WaveNet(hidden, kernel, 1, layers, gin)
        self.post = nn.Conv1d(hidden, self.half, 1)

    def inverse(self, x: torch.Tensor, mask: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        x0, x1 = x.split(self.half, dim=1)
        m = self.post(self.enc(self.pre(x0) * mask, mask, g)) * mask
        return torch.cat([x0, (x1 - m) * mask], dim=1)


class _Flip(nn.Module):
    """Parameterless; present so the couplings keep the checkpoint's even indices (flows.0, flows.2 ...)."""


class Flow(nn.Module):
    def __init__(self, channels: int, hidden: int, gin: int, n_flows: int = 4) -> None:
        super().__init__()
        self.flows = nn.ModuleList()
        for _ in range(n_flows):
            self.flows.append(Coupling(channels, hidden, 5, 3, gin))
            self.flows.append(_Flip())

    def inverse(self, z: torch.Tensor, mask: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        for f in reversed(self.flows):
            z = torch.flip(z, [1]) if isinstance(f, _Flip) else f.inverse(z, mask, g)
        return z


@dataclass(frozen=True)
class RvcConfig:
    inter_channels: int
    hidden_channels: int
    filter_channels: int
    n_heads: int
    n_layers: int
    kernel_size: int
    resblock_kernel_sizes: list
    resblock_dilation_sizes: list
    upsample_rates: list
    upsample_initial_channel: int
    upsample_kernel_sizes: list
    spk_embed_dim: int
    gin_channels: int
    sample_rate: int
    phone_dim: int = 768  # v2; v1 models read 256-d content

    @property
    def version(self) -> str:
        return "v1" if self.phone_dim == 256 else "v2"

    @staticmethod
    def from_list(cfg: list) -> "RvcConfig":
        if len(cfg) != 18:
            raise ValueError(f"config has {len(cfg)} entries, not 18")
        sr = cfg[17]
        sr = SAMPLE_RATES.get(sr, sr) if isinstance(sr, str) else int(sr)
        return RvcConfig(int(cfg[2]), int(cfg[3]), int(cfg[4]), int(cfg[5]), int(cfg[6]), int(cfg[7]), list(cfg[10]),
                         [list(d) for d in cfg[11]], list(cfg[12]), int(cfg[13]), list(cfg[14]), int(cfg[15]), int(cfg[16]), int(sr))

    def to_list(self) -> list:
        return [self.upsample_initial_channel * 2 + 1, 32, self.inter_channels, self.hidden_channels, self.filter_channels,
                self.n_heads, self.n_layers, self.kernel_size, 0, "1", self.resblock_kernel_sizes,
                self.resblock_dilation_sizes, self.upsample_rates, self.upsample_initial_channel,
                self.upsample_kernel_sizes, self.spk_embed_dim, self.gin_channels, self.sample_rate]


class RvcSynthesizer(nn.Module):
    def __init__(self, cfg: RvcConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.enc_p = ContentPrior(cfg.inter_channels, cfg.hidden_channels, cfg.filter_channels, cfg.n_heads,
                                  cfg.n_layers, cfg.kernel_size, cfg.phone_dim)
        self.flow = Flow(cfg.inter_channels, cfg.hidden_channels, cfg.gin_channels)
        self.dec = NSFGenerator(cfg.inter_channels, cfg.upsample_rates, cfg.upsample_kernel_sizes,
                                cfg.upsample_initial_channel, cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes,
                                cfg.sample_rate, gin_channels=cfg.gin_channels, hold_f0=True)
        self.emb_g = nn.Embedding(cfg.spk_embed_dim, cfg.gin_channels)

    @torch.inference_mode()
    def infer(self, phone: torch.Tensor, pitch: torch.Tensor, f0: torch.Tensor, sid: int = 0,
              noise_scale: float = 0.66666) -> torch.Tensor:
        """phone [1, T, 768] at 100 Hz, pitch [1, T] coarse bins, f0 [1, T] Hz → waveform [T * upp]."""
        if not 0 <= sid < self.cfg.spk_embed_dim:
            raise BadInput(f"This RVC model has speaker ids 0 to {self.cfg.spk_embed_dim - 1}; {sid} is not one of them.")
        g = self.emb_g(torch.tensor([sid], device=phone.device)).unsqueeze(-1)
        m, logs, mask = self.enc_p(phone, pitch)
        z_p = (m + torch.exp(logs) * torch.randn_like(m) * noise_scale) * mask
        z = self.flow.inverse(z_p, mask, g)
        return self.dec(z * mask, f0, g)[0, 0]


@dataclass(frozen=True)
class ModelInfo:
    """What a checkpoint says about itself, found at upload and shown to the admin."""

    version: str  # "v1" (256-d content) or "v2" (768-d)
    sample_rate: int
    speakers: int
    info: str


# what RVC's own configs use (v1/v2 at 32k/40k/48k) with room to spare; past these a config is not a voice model,
# and building the layers it names would take minutes or gigabytes before its tensors could be compared
MAX_SPEAKERS = 10_000
_BOUNDS = {"inter_channels": 1024, "hidden_channels": 1024, "filter_channels": 4096, "n_heads": 16, "n_layers": 24,
           "kernel_size": 31, "upsample_initial_channel": 2048, "gin_channels": 1024, "spk_embed_dim": MAX_SPEAKERS}


class TooLarge(ValueError):
    """A config value past what RVC's own models use."""


def _check_bounds(cfg: RvcConfig) -> None:
    for field, top in _BOUNDS.items():
        value = getattr(cfg, field)
        if not 1 <= value <= top:
            raise TooLarge(f"{field} {value} (allowed: 1 to {top})")
    if cfg.hidden_channels % cfg.n_heads:
        raise ValueError(f"{cfg.hidden_channels} channels do not split into {cfg.n_heads} heads")
    lists = {"resblock_kernel_sizes": cfg.resblock_kernel_sizes, "upsample_rates": cfg.upsample_rates,
             "upsample_kernel_sizes": cfg.upsample_kernel_sizes, **{f"resblock_dilation_sizes[{i}]": d
                                                                    for i, d in enumerate(cfg.resblock_dilation_sizes)}}
    if not 1 <= len(cfg.resblock_dilation_sizes) <= 8:
        raise TooLarge(f"{len(cfg.resblock_dilation_sizes)} dilation lists (allowed: 1 to 8)")
    for field, values in lists.items():
        if not 1 <= len(values) <= 8 or not all(isinstance(v, int) and 1 <= v <= 64 for v in values):
            raise TooLarge(f"{field} {values!r} (allowed: 1 to 8 numbers of 1 to 64)")
    if math.prod(cfg.upsample_rates) > 1024 or not 8000 <= cfg.sample_rate <= 96000:
        raise TooLarge(f"upsampling {cfg.upsample_rates} at {cfg.sample_rate} Hz (allowed: x1024 at most, 8 to 96 kHz)")


def _check_shapes(cfg: RvcConfig, state: dict[str, torch.Tensor]) -> None:
    """The layers the config names, built on the meta device (shapes only, no memory), against the file's tensors."""
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in RvcSynthesizer(cfg).state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()}
    if expected != found:
        wrong = sorted(set(expected) ^ set(found)) or sorted(k for k in expected if expected[k] != found[k])
        raise ValueError(f"{len(wrong)} tensors missing, extra or of another size, e.g. {wrong[:3]}")


def load_checkpoint(path: Path, device: str = "cpu") -> tuple[RvcSynthesizer, ModelInfo]:
    """A user's RVC .pth (v1 or v2, with pitch) → the network in eval mode; any damage is one clear EngineError."""
    name = Path(path).name
    try:
        ckpt = load_weights(path)
    except OversizedClaim as exc:
        raise EngineError(f"The RVC model '{name}' claims more than the file holds ({exc}); it is not a usable model.") from None
    except UnsafeWeights as exc:
        raise EngineError(f"The RVC model '{name}' could not be read safely: it is damaged, not an RVC model, "
                          "or holds code instead of weights.", detail=str(exc)) from None
    if not isinstance(ckpt, dict) or "weight" not in ckpt or "config" not in ckpt:
        raise EngineError(f"'{name}' is not an RVC inference model (it has no 'weight' and 'config'); "
                          "give the small .pth from the weights folder, not a training checkpoint (G_*.pth).")
    if int(ckpt.get("f0", 1)) != 1:
        raise EngineError(f"'{name}' is an RVC model trained without pitch; only models with pitch guidance are supported.")
    try:
        state = fold_weight_norm({k: v for k, v in ckpt["weight"].items() if not k.startswith("enc_q.")})
        cfg = RvcConfig.from_list(list(ckpt["config"]))
        if str(list(ckpt["config"])[9]) != "1":
            raise ValueError("resblock type other than '1'")
        phone_dim = int(state["enc_p.emb_phone.weight"].shape[1])
        if phone_dim not in (256, 768):
            raise ValueError(f"content width {phone_dim}")
        cfg = RvcConfig(**{**cfg.__dict__, "spk_embed_dim": int(state["emb_g.weight"].shape[0]), "phone_dim": phone_dim})
        _check_bounds(cfg)
        _check_shapes(cfg, state)  # before the network is built at the size the config claims
        net = RvcSynthesizer(cfg)
        net.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    except TooLarge as exc:
        raise EngineError(f"The RVC model '{name}' claims {exc}; that is past what an RVC voice model uses.") from None
    except Exception as exc:
        raise EngineError(f"The RVC model '{name}' does not match the v1/v2 layout (tensors missing or of the wrong size).",
                          detail=repr(exc)) from exc
    declared = str(ckpt.get("version", "v1"))
    if declared in ("v1", "v2") and declared != cfg.version:
        raise EngineError(f"'{name}' says it is an RVC {declared} model but its content layer is {cfg.version}'s.")
    return net.to(device).eval(), ModelInfo(cfg.version, cfg.sample_rate, cfg.spk_embed_dim, str(ckpt.get("info", ""))[:200])
