"""The rvc engine against a reference written here, separately, from the published RVC v2 inference.

The reference shares no code with RVC/: it reads the checkpoint with torch's own loader, folds weight norm
itself, runs HuBERT (fairseq layout), the prior with VITS's relative attention (its pad-and-reshape
indexing), the flow, the NSF source and HiFi-GAN decoder in plain torch functions, and the pipeline steps
as RVC's WebUI performs them (scipy's filtfilt, faiss for retrieval, librosa for the loudness envelope). With
the same seed both must produce the same waveform from a real recording.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from RVC.engines.rvc import RvcEngine
from tests.speech import speech_clips
from tests.voice_fixtures import FairseqConfigStandIn, write_tiny_hubert, write_tiny_rvc

CONTEXT = 1  # seconds of mirrored context (x_pad)
PITCH_SHIFT, INDEX_RATE, PROTECT, RMS_MIX, SPEAKER = 3.0, 0.6, 0.33, 0.25, 1


def folded(sd: dict, name: str, keep: int = 0) -> torch.Tensor:
    if name + ".weight" in sd:
        return sd[name + ".weight"].float()
    g, v = sd[name + ".weight_g"].float(), sd[name + ".weight_v"].float()
    dims = tuple(d for d in range(v.dim()) if d != keep)
    return g * v / v.norm(dim=dims, keepdim=True)


def bias(sd: dict, name: str):
    b = sd.get(name + ".bias")
    return None if b is None else b.float()


def conv(sd, name, x, **kw):
    return F.conv1d(x, folded(sd, name), bias(sd, name), **kw)


# ---- HuBERT (fairseq, post-norm) ----

def ref_hubert(sd: dict, wav: torch.Tensor) -> torch.Tensor:
    x = wav[None, None]
    for i, (_k, s) in enumerate([(10, 5), (3, 2), (3, 2), (3, 2), (3, 2), (2, 2), (2, 2)]):
        x = F.conv1d(x, sd[f"feature_extractor.conv_layers.{i}.0.weight"].float(), stride=s)
        if i == 0:
            x = F.group_norm(x, x.shape[1], sd["feature_extractor.conv_layers.0.2.weight"].float(),
                             sd["feature_extractor.conv_layers.0.2.bias"].float())
        x = F.gelu(x)
    x = x.transpose(1, 2)
    x = F.layer_norm(x, x.shape[-1:], sd["layer_norm.weight"].float(), sd["layer_norm.bias"].float())
    x = F.linear(x, sd["post_extract_proj.weight"].float(), sd["post_extract_proj.bias"].float())
    w = folded(sd, "encoder.pos_conv.0", keep=2)
    groups = x.shape[-1] // w.shape[1]
    pos = F.conv1d(x.transpose(1, 2), w, sd["encoder.pos_conv.0.bias"].float(), padding=w.shape[2] // 2, groups=groups)
    if w.shape[2] % 2 == 0:
        pos = pos[..., :-1]
    x = x + F.gelu(pos).transpose(1, 2)
    x = F.layer_norm(x, x.shape[-1:], sd["encoder.layer_norm.weight"].float(), sd["encoder.layer_norm.bias"].float())
    n_layers = len({k.split(".")[2] for k in sd if k.startswith("encoder.layers.")})
    for i in range(n_layers):
        p = f"encoder.layers.{i}."
        lin = lambda y, n, p=p: F.linear(y, sd[p + n + ".weight"].float(), sd[p + n + ".bias"].float())
        t, d, heads = x.shape[1], x.shape[2], 12
        split = lambda y, t=t, d=d, heads=heads: y.view(t, heads, d // heads).transpose(0, 1)
        q = split(lin(x[0], "self_attn.q_proj")) * (d // heads) ** -0.5
        k, v = split(lin(x[0], "self_attn.k_proj")), split(lin(x[0], "self_attn.v_proj"))
        attn = (torch.softmax(q @ k.transpose(1, 2), dim=-1) @ v).transpose(0, 1).reshape(1, t, d)
        x = F.layer_norm(x + lin(attn, "self_attn.out_proj"), (d,), sd[p + "self_attn_layer_norm.weight"].float(),
                         sd[p + "self_attn_layer_norm.bias"].float())
        ff = lin(F.gelu(lin(x, "fc1")), "fc2")
        x = F.layer_norm(x + ff, (d,), sd[p + "final_layer_norm.weight"].float(), sd[p + "final_layer_norm.bias"].float())
    return x[0]


# ---- the synthesizer ----

def rel_to_abs(x: torch.Tensor) -> torch.Tensor:
    """[b, h, l, 2l-1] relative logits → [b, h, l, l] (VITS's pad-and-reshape indexing)."""
    b, h, l, _ = x.shape
    x = F.pad(x, (0, 1)).reshape(b, h, 2 * l * l)
    x = F.pad(x, (0, l - 1)).reshape(b, h, l + 1, 2 * l - 1)
    return x[:, :, :l, l - 1:]


def abs_to_rel(x: torch.Tensor) -> torch.Tensor:
    b, h, l, _ = x.shape
    x = F.pad(x, (0, l - 1)).reshape(b, h, l * (2 * l - 1))
    x = F.pad(x, (l, 0)).reshape(b, h, l, 2 * l)
    return x[:, :, :, 1:]


def rel_embeddings(emb: torch.Tensor, length: int, window: int = 10) -> torch.Tensor:
    pad = max(length - (window + 1), 0)
    start = max((window + 1) - length, 0)
    return F.pad(emb, (0, 0, pad, pad))[start:start + 2 * length - 1]


def ref_attention(sd, p, x, heads):
    b, c, t = x.shape
    kc = c // heads
    q, k, v = (conv(sd, p + n, x).view(b, heads, kc, t).transpose(2, 3) for n in ("conv_q", "conv_k", "conv_v"))
    q = q / math.sqrt(kc)
    scores = q @ k.transpose(-2, -1) + rel_to_abs(q @ rel_embeddings(sd[p + "emb_rel_k"][0].float(), t).T)
    attn = torch.softmax(scores, dim=-1)
    out = attn @ v + abs_to_rel(attn) @ rel_embeddings(sd[p + "emb_rel_v"][0].float(), t)
    return conv(sd, p + "conv_o", out.transpose(2, 3).reshape(b, c, t))


def channel_norm(sd, p, x):
    return F.layer_norm(x.transpose(1, 2), x.shape[1:2], sd[p + "gamma"].float(), sd[p + "beta"].float()).transpose(1, 2)


def ref_prior(sd, cfg, phone, pitch):
    hidden, heads, layers, kernel = cfg[3], cfg[5], cfg[6], cfg[7]
    x = F.linear(phone, sd["enc_p.emb_phone.weight"].float(), sd["enc_p.emb_phone.bias"].float())
    x = F.leaky_relu((x + sd["enc_p.emb_pitch.weight"].float()[pitch]) * math.sqrt(hidden), 0.1).transpose(1, 2)
    same = ((kernel - 1) // 2, kernel // 2)
    for i in range(layers):
        x = channel_norm(sd, f"enc_p.encoder.norm_layers_1.{i}.", x + ref_attention(sd, f"enc_p.encoder.attn_layers.{i}.", x, heads))
        f = f"enc_p.encoder.ffn_layers.{i}."
        y = conv(sd, f + "conv_2", F.pad(torch.relu(conv(sd, f + "conv_1", F.pad(x, same))), same))
        x = channel_norm(sd, f"enc_p.encoder.norm_layers_2.{i}.", x + y)
    return conv(sd, "enc_p.proj", x).chunk(2, dim=1)


def ref_flow_reverse(sd, cfg, z, g):
    hidden = cfg[3]
    for i in reversed(range(4)):
        z = torch.flip(z, [1])
        p = f"flow.flows.{2 * i}."
        x0, x1 = z.chunk(2, dim=1)
        h = conv(sd, p + "pre", x0)
        cond = conv(sd, p + "enc.cond_layer", g)
        out = 0
        for j in range(3):
            a = conv(sd, f"{p}enc.in_layers.{j}", h, padding=2) + cond[:, 2 * hidden * j: 2 * hidden * (j + 1)]
            rs = conv(sd, f"{p}enc.res_skip_layers.{j}", torch.tanh(a[:, :hidden]) * torch.sigmoid(a[:, hidden:]))
            if j < 2:
                h, out = h + rs[:, :hidden], out + rs[:, hidden:]
            else:
                out = out + rs
        z = torch.cat([x0, x1 - conv(sd, p + "post", out)], dim=1)
    return z


def ref_source(sd, f0, upp, sr):
    """NSF harmonic source, one harmonic: F0 held over each frame, phase summed, noise where unvoiced."""
    torch.rand(1, 1)  # the random start phase RVC draws; the fundamental's is zero
    f0s = f0.repeat_interleave(upp, dim=1)
    phase = torch.cumsum(f0s.double() / sr, dim=1)
    sine = torch.sin(2 * torch.pi * (phase % 1)).float() * 0.1
    uv = (f0s > 0).float()
    sine = sine * uv + (uv * 0.003 + (1 - uv) * 0.1 / 3) * torch.randn_like(sine)
    return torch.tanh(sine[..., None] * sd["dec.m_source.l_linear.weight"].float()[0, 0]
                      + sd["dec.m_source.l_linear.bias"].float()[0])[..., 0][:, None]


def ref_decoder(sd, cfg, z, f0, g):
    kernels, dilations, rates, up_kernels = cfg[10], cfg[11], cfg[12], cfg[14]
    har = ref_source(sd, f0, math.prod(rates), cfg[17])
    x = conv(sd, "dec.conv_pre", z, padding=3) + conv(sd, "dec.cond", g)
    for i, (u, k) in enumerate(zip(rates, up_kernels)):
        x = F.conv_transpose1d(F.leaky_relu(x, 0.1), folded(sd, f"dec.ups.{i}"), bias(sd, f"dec.ups.{i}"), stride=u,
                               padding=(k - u) // 2)
        rest = math.prod(rates[i + 1:])
        x = x + (conv(sd, f"dec.noise_convs.{i}", har, stride=rest, padding=rest // 2) if rest > 1
                 else conv(sd, f"dec.noise_convs.{i}", har))
        total = 0
        for j, (rk, rd) in enumerate(zip(kernels, dilations)):
            y = x
            p = f"dec.resblocks.{i * len(kernels) + j}."
            for n, d in enumerate(rd):
                t = conv(sd, f"{p}convs1.{n}", F.leaky_relu(y, 0.1), dilation=d, padding=d * (rk - 1) // 2)
                y = y + conv(sd, f"{p}convs2.{n}", F.leaky_relu(t, 0.1), padding=(rk - 1) // 2)
            total = total + y
        x = total / len(kernels)
    return torch.tanh(conv(sd, "dec.conv_post", F.leaky_relu(x), padding=3))[0, 0]


def ref_synthesize(sd, cfg, phone, pitch, f0, sid):
    g = sd["emb_g.weight"].float()[sid][None, :, None]
    m, logs = ref_prior(sd, cfg, phone, pitch)
    z = ref_flow_reverse(sd, cfg, m + torch.exp(logs) * torch.randn_like(m) * 0.66666, g)
    return ref_decoder(sd, cfg, z, f0, g)


# ---- the pipeline, as RVC's WebUI runs it ----

def ref_pipeline(model_sd, cfg, hubert_sd, vectors, audio16):
    import faiss
    import librosa
    from scipy.signal import butter, filtfilt, medfilt

    from RVC.pitch import _pyworld

    sr = cfg[17]
    b, a = butter(N=5, Wn=48, btype="high", fs=16000)
    audio = filtfilt(b, a, audio16)
    audio_pad = np.pad(audio, (16000 * CONTEXT, 16000 * CONTEXT), mode="reflect")
    p_len = audio_pad.shape[0] // 160
    f0, _ = _pyworld().harvest(audio_pad.astype(np.double), fs=16000, f0_ceil=1100, f0_floor=50, frame_period=10)
    f0 = medfilt(f0, 3) * pow(2, PITCH_SHIFT / 12)
    mel_min, mel_max = 1127 * np.log(1 + 50 / 700), 1127 * np.log(1 + 1100 / 700)
    f0_mel = 1127 * np.log(1 + f0 / 700)
    f0_mel[f0_mel > 0] = (f0_mel[f0_mel > 0] - mel_min) * 254 / (mel_max - mel_min) + 1
    f0_mel[f0_mel <= 1] = 1
    f0_mel[f0_mel > 255] = 255
    pitch = torch.tensor(np.rint(f0_mel).astype(np.int64)[:p_len])[None]
    pitchf = torch.tensor(f0[:p_len].astype(np.float32))[None]

    with torch.no_grad():
        feats = ref_hubert(hubert_sd, torch.from_numpy(audio_pad).float())[None]
        feats0 = feats.clone()
        index = faiss.IndexFlatL2(vectors.shape[1])
        index.add(vectors)
        score, ix = index.search(feats[0].numpy(), k=8)
        weight = np.square(1 / score)
        weight /= weight.sum(axis=1, keepdims=True)
        near = np.sum(vectors[ix] * np.expand_dims(weight, axis=2), axis=1)
        feats = torch.from_numpy(near).unsqueeze(0).float() * INDEX_RATE + (1 - INDEX_RATE) * feats
        feats = F.interpolate(feats.permute(0, 2, 1), scale_factor=2).permute(0, 2, 1)
        feats0 = F.interpolate(feats0.permute(0, 2, 1), scale_factor=2).permute(0, 2, 1)
        p_len = min(p_len, feats.shape[1])
        pitch, pitchf, feats, feats0 = pitch[:, :p_len], pitchf[:, :p_len], feats[:, :p_len], feats0[:, :p_len]
        pitchff = pitchf.clone()
        pitchff[pitchf > 0] = 1
        pitchff[pitchf < 1] = PROTECT
        feats = feats * pitchff.unsqueeze(-1) + feats0 * (1 - pitchff.unsqueeze(-1))
        out = ref_synthesize(model_sd, cfg, feats, pitch, pitchf, SPEAKER).numpy()
    out = out[sr * CONTEXT: -sr * CONTEXT]
    rms1 = torch.from_numpy(librosa.feature.rms(y=audio, frame_length=16000 // 2 * 2, hop_length=16000 // 2))
    rms2 = torch.from_numpy(librosa.feature.rms(y=out, frame_length=sr // 2 * 2, hop_length=sr // 2))
    rms1 = F.interpolate(rms1.unsqueeze(0), size=out.shape[0], mode="linear").squeeze()
    rms2 = torch.clamp(F.interpolate(rms2.unsqueeze(0), size=out.shape[0], mode="linear").squeeze(), min=1e-6)
    out = out * (torch.pow(rms1, 1 - RMS_MIX) * torch.pow(rms2, RMS_MIX - 1)).numpy()
    peak = np.abs(out).max() / 0.99
    return out / peak if peak > 1 else out


@pytest.mark.slow
def test_the_engine_matches_the_reference_on_a_real_recording(tmp_path):
    from adapters.media import decode_audio
    from RVC.features import to_rate

    write_tiny_rvc(tmp_path / "voice.pth", seed=3)
    write_tiny_hubert(tmp_path / "hubert_base.pt", seed=4)
    vectors = np.random.default_rng(5).normal(size=(300, 768)).astype(np.float32)
    np.save(tmp_path / "voice.npy", vectors)
    clip = decode_audio(speech_clips("en", 2.0)[1][0].read_bytes())  # a recording with unvoiced stretches for protect
    audio16 = to_rate(clip.samples, clip.sample_rate, 16000)[: 2 * 16000].astype(np.float64)

    model = torch.load(tmp_path / "voice.pth", map_location="cpu", weights_only=True)
    with torch.serialization.safe_globals([FairseqConfigStandIn]):
        hubert = torch.load(tmp_path / "hubert_base.pt", map_location="cpu", weights_only=True)["model"]
    torch.manual_seed(11)
    expected = ref_pipeline(model["weight"], model["config"], hubert, vectors, audio16)

    engine = RvcEngine(tmp_path)
    params = {"model": "voice.pth", "index": "voice.npy", "index_rate": INDEX_RATE, "pitch_shift": PITCH_SHIFT,
              "f0_method": "harvest", "protect": PROTECT, "rms_mix_rate": RMS_MIX, "speaker_id": SPEAKER}
    engine.loaded("voice.pth"), engine.content("hubert_base.pt")  # loaded first: building modules draws random numbers
    torch.manual_seed(11)
    out, rate = engine.convert(audio16.astype(np.float32), 16000, params)

    assert rate == 40000 and out.shape == expected.shape, (out.shape, expected.shape)
    assert np.abs(expected).max() > 0.05
    error = np.abs(out - expected).max()
    assert error < 1e-5, f"the engine departs from the reference by {error:.2e}"

    # and the comparison can fail: each step left out changes the waveform far beyond that
    for change in ({"protect": 0.5}, {"speaker_id": 0}):
        torch.manual_seed(11)
        other, _ = engine.convert(audio16.astype(np.float32), 16000, {**params, **change})
        assert np.abs(other - expected).max() > max(5e-5, 100 * error), change
