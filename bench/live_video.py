"""Live talk's video (issue 14): how fast FaceStream draws 512 px frames, whether the mouth keeps time with the
sound (A/V offset, goal within ±80 ms), and the frame rate the track delivers over a real WebRTC connection.

  python bench/live_video.py cpu [--write]          # here: fps (photo, lite tiny, lite full), A/V offset, aiortc loopback
  python bench/live_video.py pack --dir DIR         # a 512 px lite avatar (full configuration) and speech, for the device
  python bench/live_video.py gpu --dir DIR --out OUT   # on the device (torch, numpy, PIL only): lite fps at 512 px
  python bench/live_video.py record --gpu-json OUT/live_video_gpu.json --command "..." [--write]

Speech is fed as it comes in live talk: one sentence (a recording) at a time. The A/V offset is, per speech
onset, the middle of the first frame whose mouth (dlib's inner-lip gap) is half-way from its closed level
to its open level, less the time the sound first comes within 20 dB of that sentence's loud level; 0 means
the mouth opens during the frame in which the sound starts (a frame lasts 40 ms).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.speech import speech_clip
RESULTS = ROOT / "bench" / "results" / "live_video.txt"
HELD_OUT = "demo-echotest"  # never seen in training, as in bench/avatar.py
ONSET_CLIPS = ("demo-thanks", "vm-goodbye", "hello-world", "demo-moreinfo", "auth-thankyou", "vm-options",
               "demo-instruct", "conf-getpin", "vm-password", "demo-nogo")
SIZE = 512


def _sentences(seconds: float) -> list:
    """The held-out recording cut at its pauses into pieces of about 1.5 s, as a TTS would hand out sentences."""
    from geneface.testclip import speech

    audio = speech([speech_clip("en", HELD_OUT)], seconds=seconds)
    from core.types import Audio

    step = int(1.5 * audio.sample_rate)
    return [Audio(audio.samples[i:i + step], audio.sample_rate) for i in range(0, len(audio.samples), step)]


def _fps(face, pieces, tries: int = 2) -> float:
    """Frames per second drawing `pieces` one after the other: the best of `tries` runs (other load only slows one)."""
    face.reset()
    face.feed(pieces[0])  # warm-up: thread pools, allocator
    best = 0.0
    for _ in range(tries):
        face.reset()
        t0 = time.perf_counter()
        n = sum(len(face.feed(p)) for p in pieces)
        best = max(best, n / (time.perf_counter() - t0))
    return best


def _ci(values) -> str:
    v = np.asarray(values, float)
    half = 1.96 * v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else float("nan")
    return f"mean {v.mean():+.0f} ms (95% CI {v.mean() - half:+.0f}..{v.mean() + half:+.0f}), range {v.min():+.0f}..{v.max():+.0f} ms, n={len(v)}"


def _av_offsets(face) -> list[float]:
    """Per onset: mouth opening time minus sound onset time, in ms (see the module's docstring)."""
    from core.types import Audio
    from geneface import landmarks as lm
    from geneface.testclip import speech

    rate = 16_000
    face.reset()
    frames, onsets = [], []
    fed = 0
    for name in ONSET_CLIPS:
        clip = speech([speech_clip("en", name)]).samples
        x = np.concatenate([np.zeros(int(0.5 * rate), np.float32), clip, np.zeros(int(0.4 * rate), np.float32)])
        hop = rate // 100
        db = 20 * np.log10(np.sqrt(np.array([np.mean(x[i:i + hop] ** 2) for i in range(0, len(x) - hop, hop)])) + 1e-9)
        onsets.append((fed + np.argmax(db > np.percentile(db, 95) - 20) * hop) / rate)
        frames += face.feed(Audio(x, rate))  # one sentence, as live talk feeds it
        fed += len(x)
    opening = lm.opening_series(frames)
    out = []
    for t in onsets:
        k0 = int(t * 25)
        before = opening[max(0, k0 - 10):max(1, k0 - 3)]  # 0.3 s of silence before the sentence
        after = opening[k0:k0 + 25]
        closed, wide = np.nanmedian(before), np.nanpercentile(after, 90)
        half = closed + 0.5 * (wide - closed)
        k = max(0, k0 - 6) + int(np.argmax(opening[max(0, k0 - 6):k0 + 25] > half))
        out.append(((k + 0.5) / 25 - t) * 1000)
    return out


def _loopback_fps(face, seconds: float = 4.0) -> tuple[float, float]:
    """(frames/s the receiving peer gets, share of frames the track had to repeat) with the face speaking throughout."""
    import asyncio

    from aiortc import RTCPeerConnection

    from bot.web.live_video import AvatarVideoTrack

    class Clock:
        started = True
        t0 = time.monotonic()

        def now(self) -> float:
            return time.monotonic() - self.t0

    async def run() -> tuple[float, float]:
        clock = Clock()
        face.reset()
        track = AvatarVideoTrack(face, clock)
        sender, receiver = RTCPeerConnection(), RTCPeerConnection()
        arrivals: list[float] = []
        tasks = []

        async def consume(remote) -> None:
            while True:
                await remote.recv()
                arrivals.append(time.monotonic())

        receiver.on("track", lambda remote: tasks.append(asyncio.ensure_future(consume(remote))))
        sender.addTrack(track)
        await sender.setLocalDescription(await sender.createOffer())
        await receiver.setRemoteDescription(sender.localDescription)
        await receiver.setLocalDescription(await receiver.createAnswer())
        await sender.setRemoteDescription(receiver.localDescription)
        while not arrivals:
            await asyncio.sleep(0.01)
        at = clock.now() + 0.2
        for piece in _sentences(seconds + 2):
            track.speak(piece, at)
            at += piece.seconds
        await asyncio.sleep(0.5)
        start, shown, repeated = len(arrivals), track.shown, track.repeated
        await asyncio.sleep(seconds)
        fps = (len(arrivals) - start) / seconds
        share = (track.repeated - repeated) / max(1, track.shown - shown)
        for task in tasks:
            task.cancel()
        await sender.close()
        await receiver.close()
        track.stop()
        return fps, share

    return asyncio.run(run())


# ---- here ----


def _tiny_lite(work: Path):
    from geneface.intake import IntakeRules, load_footage
    from geneface.lite import artifact
    from geneface.lite.data import prepare
    from geneface.lite.model import TINY
    from geneface.lite.render import LiteAvatar
    from geneface.lite.train import Trainer
    from tests.avatar_clips import training_mp4

    footage = load_footage(training_mp4(), rules=IntakeRules(min_seconds=10))
    prepared = prepare(footage, TINY.size)
    trainer = Trainer(prepared, TINY, batch=16, lr=3e-3)
    trainer.run(300)  # past the lip-sync goal on held-out speech (tests/test_lite_avatar.py)
    artifact.save(work / "tiny", trainer.model, footage.idle, prepared)
    return LiteAvatar(work / "tiny")


def cmd_cpu(args) -> list[str]:
    import torch
    from PIL import Image

    from geneface.lite.render import LiteAvatar
    from geneface.photo import PhotoAvatar, check_photo
    from geneface.stream import FaceStream
    from geneface.testclip import portrait

    work = Path(args.dir)
    if not (work / "full").exists():
        cmd_pack(args)
    out = [f"CPU here: {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, {platform.processor() or platform.machine()}; "
           f"load average {os.getloadavg()[0]:.1f} at the start (shared machine: rates vary with other work)"]
    Image.fromarray(check_photo(_png(portrait(512)[0]))).save(work / "photo.png")
    engines = {"photo (512 px portrait)": PhotoAvatar(work / "photo.png"),
               "lite tiny (256 px video, upscaled)": _tiny_lite(work),
               "lite full config (512 px video, untrained weights: speed only)": LiteAvatar(work / "full")}
    pieces = _sentences(8.0)
    for name, engine in engines.items():
        face = FaceStream(engine, size=SIZE)
        rate = _fps(face, pieces)
        idle_t0 = time.perf_counter()
        for k in range(50):
            face.idle(pose=k)
        idle = 50 / (time.perf_counter() - idle_t0)
        out.append(f"FaceStream {name} -> {SIZE} px: {rate:.1f} fps speaking, {idle:.1f} fps idle "
                   f"({rate / 25:.2f}x real time), lookahead {face.lookahead * 1000:.1f} ms")
    for name in ("photo (512 px portrait)", "lite tiny (256 px video, upscaled)"):
        offsets = _av_offsets(FaceStream(engines[name], size=256))
        out.append(f"A/V offset, {name}: {_ci(offsets)}; per onset: {' '.join(f'{o:+.0f}' for o in offsets)}")
    for name in ("photo (512 px portrait)", "lite tiny (256 px video, upscaled)"):
        fps, repeated = _loopback_fps(FaceStream(engines[name], size=SIZE))
        out.append(f"aiortc loopback (VP8, {SIZE} px, speaking): {fps:.1f} fps received; {repeated:.0%} of frames "
                   f"repeated because drawing fell behind; {name}")
    return out


def _png(rgb) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def cmd_pack(args) -> list[str]:
    """A lite avatar of the full configuration on 512 px footage (weights untrained: the speed is the same), 16 kHz
    speech cut into sentences, and Whisper's mel filter bank (the device has no faster-whisper)."""
    from geneface.intake import IntakeRules, load_footage
    from geneface.lite import artifact
    from geneface.lite.data import mel_filters, prepare
    from geneface.lite.model import LiteConfig
    from geneface.lite.train import Trainer
    from geneface.testclip import make_clip, speech

    d = Path(args.dir)
    d.mkdir(parents=True, exist_ok=True)
    clip = make_clip(speech([speech_clip("en", n) for n in ("demo-congrats", "conf-adminmenu")], seconds=10.0), size=512, seed=3)
    footage = load_footage(clip.mp4(), rules=IntakeRules(min_seconds=5), idle_seconds=8.0)
    prepared = prepare(footage, LiteConfig().size)
    artifact.save(d / "full", Trainer(prepared, LiteConfig(), batch=4).model, footage.idle, prepared)
    pieces = _sentences(12.0)
    np.savez(d / "speech.npz", filters=mel_filters(), **{f"s{i}": p.samples for i, p in enumerate(pieces)})
    return [f"packed a 512 px lite avatar ({len(footage.idle)} idle frames) and {len(pieces)} sentences in {d}"]


# ---- on the device ----


def cmd_gpu(args) -> list[str]:
    import torch

    import geneface.lite.stream as lite_stream
    from core.types import Audio
    from geneface.lite.render import LiteAvatar
    from geneface.stream import FaceStream

    d = Path(args.dir)
    z = np.load(d / "speech.npz")
    lite_stream.mel_filters = lambda: z["filters"]
    pieces = [Audio(z[f"s{i}"].astype(np.float32), 16_000) for i in range(len(z.files) - 1)]
    avatar = LiteAvatar(d / "full", gpu=0)
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU: CPU"
    result = {"device": device, "torch": torch.__version__, "size": SIZE,
              "seconds": sum(p.seconds for p in pieces), "fps": {}}
    for batch in (8, 25):
        face = FaceStream(avatar, size=SIZE, batch=batch)
        result["fps"][batch] = _fps(face, pieces, tries=3)
    # how soon a sentence's first frame is ready: what speak() has to be ahead of the audio by
    face = FaceStream(avatar, size=SIZE)
    waits = []
    for piece in pieces:
        face.reset()
        t0 = time.perf_counter()
        next(face.stream(piece))
        waits.append((time.perf_counter() - t0) * 1000)
    result["first_frame_ms"] = float(np.median(waits))
    t0 = time.perf_counter()
    for k in range(100):
        face.idle(pose=k)
    result["idle_fps"] = 100 / (time.perf_counter() - t0)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "live_video_gpu.json").write_text(json.dumps(result, indent=1))
    return [json.dumps(result)]


def cmd_record(args) -> list[str]:
    r = json.loads(Path(args.gpu_json).read_text())
    lines = [f"GPU ({r['device']}, torch {r['torch']}): lite full config, FaceStream -> {r['size']} px, "
             f"{r['seconds']:.0f} s of speech fed a sentence at a time, best of 3"]
    for batch, fps in r["fps"].items():
        lines.append(f"  {batch} frames per batch: {fps:.0f} fps ({fps / 25:.1f}x real time; goal >= 25 fps)")
    lines.append(f"  idle frames one at a time: {r['idle_fps']:.0f} fps; a sentence's first frame ready after "
                 f"{r['first_frame_ms']:.0f} ms (median)")
    lines.append(f"  device command: {args.command}")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("cpu", "pack", "gpu"):
        c = sub.add_parser(name)
        c.add_argument("--dir", default="bench/out/tmp/live_video")
        if name == "gpu":
            c.add_argument("--out", required=True)
        c.add_argument("--write", action="store_true", help=f"append the figures to {RESULTS.relative_to(ROOT)}")
    c = sub.add_parser("record")
    c.add_argument("--gpu-json", required=True)
    c.add_argument("--command", required=True, help="the device command, recorded with the figures")
    c.add_argument("--write", action="store_true")
    args = p.parse_args()
    lines = {"cpu": cmd_cpu, "pack": cmd_pack, "gpu": cmd_gpu, "record": cmd_record}[args.cmd](args)
    text = f"# bench/live_video.py {args.cmd}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n" + "\n".join(lines) + "\n"
    print(text, end="")
    if args.write and args.cmd in ("cpu", "record"):
        with open(RESULTS, "a", encoding="utf-8") as f:
            f.write(text)


if __name__ == "__main__":
    main()
