"""Tiny random-weight RVC v2 and HuBERT checkpoints in the official file layouts (real weights can't be downloaded here)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from RVC.hubert import Hubert
from RVC.nsf import split_weight_norm
from RVC.rvc_model import RvcConfig, RvcSynthesizer


@dataclass
class FairseqConfigStandIn:
    """Pickled beside the weights, as fairseq pickles its own config objects: the loader must cope without it."""

    label_rate: int = 50


def tiny_rvc_config(sample_rate: int = 40000, version: str = "v2") -> RvcConfig:
    return RvcConfig(inter_channels=16, hidden_channels=16, filter_channels=32, n_heads=2, n_layers=2, kernel_size=3,
                     resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1, 3]], upsample_rates=[10, 10, 2, 2],
                     upsample_initial_channel=32, upsample_kernel_sizes=[16, 16, 4, 4], spk_embed_dim=2,
                     gin_channels=8, sample_rate=sample_rate, phone_dim=768 if version == "v2" else 256)


def write_tiny_rvc(path: Path, seed: int = 0, version: str = "v2") -> Path:
    torch.manual_seed(seed)
    net = RvcSynthesizer(tiny_rvc_config(version=version))
    state = net.state_dict()
    normed = [k[: -len(".weight")] for k in state if k.endswith(".weight") and (
        k.startswith("dec.ups.") or ".convs1." in k or ".convs2." in k or ".in_layers." in k
        or ".res_skip_layers." in k or ".cond_layer." in k)]
    weight = {k: v.half() for k, v in split_weight_norm(state, normed).items()}
    weight["enc_q.pre.weight"] = torch.zeros(4, 4, 1).half()  # training-only part: present in real files, ignored
    torch.save({"weight": weight, "config": tiny_rvc_config().to_list(), "info": "tiny test model", "sr": "40k",
                "f0": 1, "version": version}, path)
    return path


def write_tiny_hubert(path: Path, seed: int = 0, final_proj: bool = False) -> Path:
    """final_proj: the 768 → 256 projection fairseq's checkpoint carries, which RVC v1 models read through."""
    torch.manual_seed(seed)
    model = Hubert(conv_dim=32, dim=768, ffn=64, layers=1, heads=12, pos_kernel=16, pos_groups=16)
    if final_proj:
        model.final_proj = torch.nn.Linear(768, 256)
    state = model.state_dict()
    w = state.pop("encoder.pos_conv.0.weight")
    state["encoder.pos_conv.0.weight_g"] = w.norm(dim=(0, 1), keepdim=True)
    state["encoder.pos_conv.0.weight_v"] = w
    torch.save({"model": state, "cfg": FairseqConfigStandIn()}, path)
    return path
