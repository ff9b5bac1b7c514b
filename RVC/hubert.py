"""HuBERT-base / ContentVec content encoder for the rvc engine (user-supplied weights, 768-d output of the last layer).

Reads either fairseq's `hubert_base.pt` (what RVC distributions ship) or a Hugging Face HubertModel state
dict (`.bin`, `.pt` or `.safetensors`); the sizes come from the weights themselves.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from core.errors import EngineError
from RVC.nsf import fold_weight_norm
from RVC.safe_load import load_tensor_dict

CONV_LAYERS = [(10, 5), (3, 2), (3, 2), (3, 2), (3, 2), (2, 2), (2, 2)]  # 320 samples per frame at 16 kHz

# Hugging Face names → fairseq names
_HF = [
    (r"^feature_extractor\.conv_layers\.(\d+)\.conv\.", r"feature_extractor.conv_layers.\1.0."),
    (r"^feature_extractor\.conv_layers\.0\.layer_norm\.", "feature_extractor.conv_layers.0.2."),
    (r"^feature_projection\.layer_norm\.", "layer_norm."),
    (r"^feature_projection\.projection\.", "post_extract_proj."),
    (r"^encoder\.pos_conv_embed\.conv\.parametrizations\.weight\.original0", "encoder.pos_conv.0.weight_g"),
    (r"^encoder\.pos_conv_embed\.conv\.parametrizations\.weight\.original1", "encoder.pos_conv.0.weight_v"),
    (r"^encoder\.pos_conv_embed\.conv\.", "encoder.pos_conv.0."),
    (r"\.attention\.", ".self_attn."),
    (r"^(encoder\.layers\.\d+)\.layer_norm\.", r"\1.self_attn_layer_norm."),
    (r"\.feed_forward\.intermediate_dense\.", ".fc1."),
    (r"\.feed_forward\.output_dense\.", ".fc2."),
]


class _Layer(nn.Module):
    def __init__(self, dim: int, ffn: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.self_attn = nn.Module()
        for n in ("q_proj", "k_proj", "v_proj", "out_proj"):
            setattr(self.self_attn, n, nn.Linear(dim, dim))
        self.self_attn_layer_norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, ffn)
        self.fc2 = nn.Linear(ffn, dim)
        self.final_layer_norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        a = self.self_attn
        heads = lambda y: y.view(b, t, self.heads, d // self.heads).transpose(1, 2)
        y = F.scaled_dot_product_attention(heads(a.q_proj(x)), heads(a.k_proj(x)), heads(a.v_proj(x)))
        x = self.self_attn_layer_norm(x + a.out_proj(y.transpose(1, 2).reshape(b, t, d)))
        return self.final_layer_norm(x + self.fc2(F.gelu(self.fc1(x))))


class Hubert(nn.Module):
    def __init__(self, conv_dim: int, dim: int, ffn: int, layers: int, heads: int, pos_kernel: int, pos_groups: int) -> None:
        super().__init__()
        convs = []
        for i, (k, s) in enumerate(CONV_LAYERS):
            parts = [nn.Conv1d(1 if i == 0 else conv_dim, conv_dim, k, s, bias=False), nn.Identity()]
            if i == 0:
                parts.append(nn.GroupNorm(conv_dim, conv_dim))
            convs.append(nn.Sequential(*parts))
        self.feature_extractor = nn.Module()
        self.feature_extractor.conv_layers = nn.ModuleList(convs)
        self.layer_norm = nn.LayerNorm(conv_dim)
        self.post_extract_proj = nn.Linear(conv_dim, dim)
        self.encoder = nn.Module()
        self.encoder.pos_conv = nn.ModuleList([nn.Conv1d(dim, dim, pos_kernel, padding=pos_kernel // 2, groups=pos_groups)])
        self.encoder.layer_norm = nn.LayerNorm(dim)
        self.encoder.layers = nn.ModuleList(_Layer(dim, ffn, heads) for _ in range(layers))
        self.final_proj: nn.Linear | None = None  # RVC v1 reads layer 9 through it (256-d); set when the file has it

    @torch.inference_mode()
    def forward(self, wav: torch.Tensor, layers: int | None = None) -> torch.Tensor:
        """[B, samples] at 16 kHz → [B, frames, dim], one frame per 320 samples; `layers`: stop after that many."""
        x = wav[:, None]
        for conv in self.feature_extractor.conv_layers:
            x = F.gelu(conv(x))
        x = self.post_extract_proj(self.layer_norm(x.transpose(1, 2)))
        pos = self.encoder.pos_conv[0](x.transpose(1, 2))
        if self.encoder.pos_conv[0].kernel_size[0] % 2 == 0:
            pos = pos[..., :-1]
        x = self.encoder.layer_norm(x + F.gelu(pos).transpose(1, 2))
        for layer in self.encoder.layers[:layers]:
            x = layer(x)
        return x

    def rvc_features(self, wav: torch.Tensor, version: str) -> torch.Tensor:
        """What an RVC model of that version was trained on: v2 the last layer (768-d), v1 layer 9 projected to 256-d."""
        if version == "v2":
            return self(wav)
        if self.final_proj is None:
            raise EngineError("This content encoder has no final projection, which RVC v1 models need; use hubert_base.pt.")
        with torch.inference_mode():
            return self.final_proj(self(wav, layers=9))


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    state = {}
    for k, v in load_tensor_dict(path).items():
        for pat, rep in _HF:
            k = re.sub(pat, rep, k)
        state[k] = v
    return state


def load_hubert(path: Path) -> Hubert:
    try:
        state = fold_weight_norm(_read_state(Path(path)))
        conv_dim = state["feature_extractor.conv_layers.0.0.weight"].shape[0]
        dim, ffn = state["encoder.layers.0.fc1.weight"].shape[1], state["encoder.layers.0.fc1.weight"].shape[0]
        layers = len({k.split(".")[2] for k in state if k.startswith("encoder.layers.")})
        pos = state["encoder.pos_conv.0.weight"]
        model = Hubert(conv_dim, dim, ffn, layers, heads=max(1, dim // 64), pos_kernel=pos.shape[2], pos_groups=dim // pos.shape[1])
        if "final_proj.weight" in state:
            proj = state["final_proj.weight"]
            model.final_proj = nn.Linear(proj.shape[1], proj.shape[0])
        wanted = set(model.state_dict())
        model.load_state_dict({k: v.float() for k, v in state.items() if k in wanted}, strict=True)
    except Exception as exc:
        raise EngineError(f"The content encoder '{Path(path).name}' could not be loaded (HuBERT-base or ContentVec weights).",
                          detail=repr(exc)) from exc
    return model.eval()
