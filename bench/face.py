"""Is the face worth watching (issue 28): framing, lip-sync, A/V offset and blinks, on speech no engine was tuned on,
side by side with an earlier commit's engines, plus screenshots.

  python bench/face.py [--baseline COMMIT] [--write] [--shots]
  python bench/face.py parts [--write]        # how soon a web page's face can start after the voice
  python bench/face.py live [--write]         # the live face's cost to the voice, with and without, ABBA

Each engine's code (this checkout's, and the baseline commit's taken with `git archive`) renders in its own
process; every measurement is made here, on the decoded MP4s, by the same code:

- face height: dlib's CNN face detector (the MMOD model of face-recognition-models, not the HOG detector
  the engines frame with) on frames sampled every second: its box's height over the frame's height, for the
  rectangular video and for the round video note that `to_video_note` makes of it (goals ≥ 35 % and ≥ 45 %);
  the box's centre wandering (standard deviation over the samples, in % of the frame) says how steady it is.
- lip-sync: the inner-lip gap dlib's landmarks measure per frame against the loudness envelope of the MP4's
  own decoded sound: Pearson r (goal ≥ 0.8), and the A/V offset, the lag (± 200 ms, parabola-refined)
  where their cross-correlation peaks (positive: the mouth moves after the sound; goal within ± 80 ms).
- blinks: runs of frames whose eye aspect ratio (lid gap over eye width, both eyes) drops under 75 % of the
  clip's median, counted with the seconds between them.

Speech: Debian's asterisk-core-sounds-en-wav prompts (a voice none of the engines saw; the photo engine's
lip-shape bands were centred on every sixth prompt of that folder, the bench uses others). The photo engine
speaks with the demo portrait; the lite engine trains its tiny configuration on a 22 s generated clip
(geneface.testclip: the astronaut portrait mouthing some prompts) and renders others.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TREE = Path(os.environ.get("FACE_BENCH_TREE", ROOT))
sys.path.insert(0, str(TREE))
PROMPTS = Path("/usr/share/asterisk/sounds/en")
RESULTS = ROOT / "bench" / "results"
PORTRAIT = ROOT / "assets" / "demo" / "portrait.jpg"
FPS = 25


def _prompts(offset: int) -> list[Path]:
    """Prompts not among those the lip-shape bands were centred on (every sixth, from the first), longest first."""
    files = sorted(PROMPTS.glob("*.wav"))
    chosen = [f for i, f in enumerate(files) if i % 6 == offset]
    return sorted(chosen, key=lambda f: -f.stat().st_size)


def _speech(paths: list[Path], seconds: float):
    from geneface.testclip import speech

    return speech(paths, seconds=seconds)


# ---- rendering, in the process of the engine's own code ----


def cmd_render(args) -> None:
    """Render with the code on sys.path (this checkout or the baseline's tree) into `args.dir`."""
    from geneface.photo import PhotoAvatar, check_photo
    from PIL import Image

    d = Path(args.dir)
    d.mkdir(parents=True, exist_ok=True)
    timings = {}
    speech = _speech(_prompts(3)[:12], args.seconds)
    Image.fromarray(check_photo(PORTRAIT.read_bytes())).save(d / "photo.png")
    photo = PhotoAvatar(d / "photo.png")
    t0 = time.perf_counter()
    (d / "photo.mp4").write_bytes(photo.render(speech))
    timings["photo_render_s"] = time.perf_counter() - t0
    timings["speech_s"] = speech.seconds

    from geneface.intake import IntakeRules, load_footage
    from geneface.lite import artifact
    from geneface.lite.data import prepare
    from geneface.lite.model import TINY
    from geneface.lite.render import LiteAvatar
    from geneface.lite.train import Trainer
    from geneface.testclip import make_clip

    import torch

    torch.manual_seed(0)
    torch.set_num_threads(1)  # a shared machine: one thread is as fast as two fighting other work
    clip = make_clip(_speech(_prompts(1)[:20], 22.0), seed=1)
    footage = load_footage(clip.mp4(), rules=IntakeRules(min_seconds=10))
    prepared = prepare(footage, TINY.size)
    trainer = Trainer(prepared, TINY, batch=16, lr=3e-3)
    trainer.run(args.lite_steps)
    artifact.save(d / "lite", trainer.model, footage.idle, prepared)
    held = _speech(_prompts(5)[:12], args.seconds)
    t0 = time.perf_counter()
    (d / "lite.mp4").write_bytes(LiteAvatar(d / "lite").render(held))
    timings["lite_render_s"] = time.perf_counter() - t0
    timings["lite_speech_s"] = held.seconds
    (d / "timings.json").write_text(json.dumps(timings))


# ---- measuring, here ----


def _cnn():
    import dlib

    from geneface.landmarks import _models_dir

    return dlib.cnn_face_detection_model_v1(str(_models_dir() / "mmod_human_face_detector.dat"))


def face_fraction(frames: list[np.ndarray]) -> tuple[float, float, int]:
    """(median box height over frame height, box centre's wander in % of the frame, frames with a face)."""
    detector = _cnn()
    heights, centres = [], []
    for f in frames:
        found = detector(np.ascontiguousarray(f), 0)
        if not len(found):
            continue
        r = max(found, key=lambda m: m.rect.height()).rect
        heights.append(r.height() / f.shape[0])
        centres.append(((r.left() + r.right()) / 2 / f.shape[1], (r.top() + r.bottom()) / 2 / f.shape[0]))
    if not heights:
        return float("nan"), float("nan"), 0
    wander = float(np.sqrt(np.var(np.array(centres), axis=0).sum()) * 100)
    return float(np.median(heights)), wander, len(heights)


def envelope(audio, n: int) -> np.ndarray:
    from geneface.warp import loudness_track

    return loudness_track(audio, FPS)[:n]


def av_offset_ms(opening: np.ndarray, drive: np.ndarray, max_lag: int = 5) -> float:
    """The lag (ms) at which the mouth best follows the sound: positive when the mouth comes later."""
    ok = ~np.isnan(opening)
    a = np.where(ok, opening - np.nanmean(opening), 0.0)
    b = drive - drive.mean()
    lags = np.arange(-max_lag, max_lag + 1)
    c = np.array([np.sum(a[max(0, k):len(a) + min(0, k)] * b[max(0, -k):len(b) - max(0, k)]) for k in lags])
    i = int(np.argmax(c))
    frac = 0.0
    if 0 < i < len(c) - 1:
        den = c[i - 1] - 2 * c[i] + c[i + 1]
        frac = 0.5 * (c[i - 1] - c[i + 1]) / den if den else 0.0
    return float((lags[i] + frac) * 1000 / FPS)


def eye_openness(points: np.ndarray) -> float:
    def one(e: np.ndarray) -> float:
        return (np.linalg.norm(e[1] - e[5]) + np.linalg.norm(e[2] - e[4])) / (2 * np.linalg.norm(e[0] - e[3]) + 1e-6)

    return (one(points[36:42]) + one(points[42:48])) / 2


def blinks(openness: np.ndarray) -> list[int]:
    """Frame indices where a blink starts."""
    closed = openness < 0.75 * np.nanmedian(openness)
    return [i for i in range(len(closed)) if closed[i] and (i == 0 or not closed[i - 1])]


def measure(mp4: bytes) -> dict:
    from adapters.media import decode_audio
    from adapters.video import read_frames, to_video_note
    from geneface import landmarks as lm

    frames = list(read_frames(mp4))
    audio = decode_audio(mp4, 16_000)
    tracked = lm.track(frames)
    opening = np.array([lm.mouth_opening(p) if p is not None else np.nan for p in tracked])
    eyes = np.array([eye_openness(p) if p is not None else np.nan for p in tracked])
    drive = envelope(audio, len(frames))
    ok = ~np.isnan(opening)
    r = float(np.corrcoef(opening[ok], drive[ok])[0, 1])
    starts = blinks(eyes)
    sample = frames[::2 * FPS]
    note = list(read_frames(to_video_note(mp4)))[::2 * FPS]
    rect, wander, found = face_fraction(sample)
    note_h, note_wander, note_found = face_fraction(note)
    return {"frames": len(frames), "size": f"{frames[0].shape[1]}x{frames[0].shape[0]}", "r": r,
            "offset_ms": av_offset_ms(opening, drive), "tracked": float(ok.mean()), "blinks": len(starts),
            "blink_gaps_s": [round((b - a) / FPS, 2) for a, b in itertools.pairwise(starts)], "seconds": len(frames) / FPS,
            "face_rect": rect, "wander_rect": wander, "found_rect": f"{found}/{len(sample)}",
            "face_note": note_h, "wander_note": note_wander, "found_note": f"{note_found}/{len(note)}",
            "opening": opening.tolist()}


def _render_tree(tree: Path, out: Path, args) -> None:
    env = {**os.environ, "FACE_BENCH_TREE": str(tree), "PYTHONPATH": str(tree)}
    subprocess.run([sys.executable, str(Path(__file__).resolve()), "render", "--dir", str(out), "--seconds", str(args.seconds),
                    "--lite-steps", str(args.lite_steps)], check=True, env=env, cwd=tree)


def _baseline_tree(commit: str, into: Path) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "adapters", "core", "geneface"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def _line(name: str, m: dict, t: dict, key: str) -> list[str]:
    render_s = t[f"{key}_render_s"]
    speech_s = t["speech_s" if key == "photo" else "lite_speech_s"]
    gaps = m["blink_gaps_s"]
    return [
        f"{name}: {m['size']} px, {m['seconds']:.1f} s of unseen speech, rendered in {render_s:.1f} s "
        f"({speech_s / render_s:.1f}x real time with encoding)",
        f"  face height (CNN detector) {100 * m['face_rect']:.0f} % of the frame (found {m['found_rect']}), "
        f"video note {100 * m['face_note']:.0f} % (found {m['found_note']}); centre wanders "
        f"{m['wander_rect']:.1f} % / {m['wander_note']:.1f} %",
        f"  lip-sync r = {m['r']:.3f} (mouth tracked in {100 * m['tracked']:.0f} % of frames), A/V offset "
        f"{m['offset_ms']:+.0f} ms",
        f"  blinks: {m['blinks']} in {m['seconds']:.0f} s" + (f", {min(gaps):.1f}-{max(gaps):.1f} s apart" if gaps else ""),
    ]


def cmd_run(args) -> None:
    import os as _os

    work = Path(tempfile.mkdtemp(prefix="face-bench-"))
    load = _os.getloadavg()[0]
    lines = [f"# bench/face.py, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
             f"CPU here: {_os.cpu_count()} cores, {platform.machine()}; load average {load:.1f} at the start "
             "(a shared machine: render speeds vary with other work; the quality figures do not)"]
    trees = [("this checkout", ROOT)]
    if args.baseline:
        trees.insert(0, (f"baseline {args.baseline}", _baseline_tree(args.baseline, work / "baseline-tree")))
    results = {}
    for name, tree in trees:
        out = work / name.split()[0]
        _render_tree(tree, out, args)
        t = json.loads((out / "timings.json").read_text())
        photo, lite = measure((out / "photo.mp4").read_bytes()), measure((out / "lite.mp4").read_bytes())
        results[name] = (out, photo, lite)
        lines += [f"## {name}"] + _line("photo engine, demo portrait", photo, t, "photo") + \
                 _line(f"lite engine, tiny config trained {args.lite_steps} steps on a 22 s clip", lite, t, "lite")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.write:
        with open(RESULTS / "avatar.txt", "a", encoding="utf-8") as f:
            f.write(text)
    if args.shots:
        screenshots(results)


# ---- how soon the web page's face can start ----


def cmd_parts(args) -> None:
    """CPU seconds to draw and encode a first sentence's face (photo engine, demo portrait, 512 px): on a quiet
    machine the web page's face starts about that long after the voice; wall seconds here, under other load, beside it."""
    from geneface.photo import PhotoAvatar, check_photo
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "photo.png"
        Image.fromarray(check_photo(PORTRAIT.read_bytes())).save(path)
        photo = PhotoAvatar(path)
        speech = _speech(_prompts(3)[:4], 6.0)
        photo.render(speech.__class__(speech.samples[:8000], speech.sample_rate))  # warm-up: x264, caches
        lines = [f"# bench/face.py parts, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average "
                 f"{os.getloadavg()[0]:.1f}, {os.cpu_count()} cores",
                 "web page: a first sentence's face (photo engine, demo portrait, 512 px), drawn and encoded as one part"]
        for seconds in (1.0, 1.5, 2.5):
            part = speech.__class__(speech.samples[:int(seconds * speech.sample_rate)], speech.sample_rate)
            best_cpu = best_wall = float("inf")
            for _ in range(args.tries):
                c0, t0 = time.process_time(), time.perf_counter()
                photo.render(part)
                best_cpu = min(best_cpu, time.process_time() - c0)
                best_wall = min(best_wall, time.perf_counter() - t0)
            lines.append(f"  {seconds:.1f} s sentence: {best_cpu:.2f} s of CPU (the wall time on a quiet machine), "
                         f"{best_wall:.2f} s wall here; best of {args.tries}")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.write:
        with open(RESULTS / "avatar.txt", "a", encoding="utf-8") as f:
            f.write(text)


# ---- the live face's cost to the voice ----


class _Clock:
    started = True

    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self.t0


def cmd_live(args) -> None:
    """Live talk's voice with the face drawing and without: how long Piper takes to speak each sentence of an
    answer while the demo portrait's live track (bot/web/live_video.py, its thread niced as in a session)
    draws 512 px frames for speech at 25 fps and a consumer takes them as WebRTC would, against the same with
    no face; trials alternate ABBA. The local language model is left out (its llama.cpp build crashed in this
    environment), so this is the face's cost to the speech stage of the first answer audio."""
    import asyncio

    from adapters.settings import Settings
    from adapters.engines import build_synthesizers
    from bot.web.live_video import AvatarVideoTrack
    from geneface.photo import PhotoAvatar, check_photo
    from geneface.stream import FaceStream
    from PIL import Image

    sentences = ["Hello there, it is good to hear from you again.", "The weather should stay mild for the rest of the week.",
                 "Take a light jacket if you go out tonight.", "I can tell you more about it whenever you like."]

    async def main() -> list[str]:
        with tempfile.TemporaryDirectory() as tmp:
            synth = build_synthesizers(Settings(_env_file=None, data_dir=Path(tmp)))[0]
            await synth.synthesize("Warming up.")
            path = Path(tmp) / "photo.png"
            Image.fromarray(check_photo(PORTRAIT.read_bytes())).save(path)
            photo = PhotoAvatar(path)
            speech = _speech(_prompts(3)[:6], 8.0)
            took: dict[bool, list[float]] = {False: [], True: []}
            received = []
            for i in range(4 * args.rounds):
                with_face = (i % 4) in (1, 2)
                track = consumer = None
                if with_face:
                    clock = _Clock()
                    track = AvatarVideoTrack(FaceStream(photo, 512), clock)
                    track.speak(speech, clock.now() + 0.2)

                    async def consume(t=track) -> None:
                        while True:
                            await t.recv()

                    consumer = asyncio.ensure_future(consume())
                    await asyncio.sleep(0.5)  # the face is speaking when the next sentence is asked for
                t0 = time.perf_counter()
                for text in sentences:
                    await synth.synthesize(text)
                took[with_face].append(time.perf_counter() - t0)
                if track is not None:
                    received.append((track.shown, track.repeated))
                    consumer.cancel()
                    await asyncio.gather(consumer, return_exceptions=True)
                    track.stop()
            med = {k: float(np.median(v)) for k, v in took.items()}
            shown = sum(a for a, _ in received)
            repeated = sum(b for _, b in received)
            return [f"# bench/face.py live, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average "
                    f"{os.getloadavg()[0]:.1f}, {os.cpu_count()} cores (shared: other work slows both arms alike, ABBA)",
                    f"live voice (Piper, 4 sentences) without a face: median {med[False]:.2f} s "
                    f"({', '.join(f'{v:.2f}' for v in took[False])})",
                    f"  with the demo face's live track drawing 512 px speech frames: median {med[True]:.2f} s "
                    f"({', '.join(f'{v:.2f}' for v in took[True])}); ratio {med[True] / med[False]:.2f} (goal <= 1.3); "
                    f"{repeated} of {shown} frames sent were repeats because drawing fell behind"]

    lines = asyncio.run(main())
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.write:
        with open(RESULTS / "avatar.txt", "a", encoding="utf-8") as f:
            f.write(text)


# ---- screenshots ----


def _pick(mp4: Path, opening: list[float]) -> dict[str, np.ndarray]:
    """Frames of the video with the mouth at rest, mid-way (median of the spoken frames) and widest."""
    from adapters.video import read_frames

    o = np.array(opening)
    valid = np.where(~np.isnan(o))[0]
    ov = o[valid]
    spoken = valid[ov > np.percentile(ov, 40)]
    mid = spoken[np.argmin(np.abs(o[spoken] - np.median(o[spoken])))]
    want = {"at rest": int(valid[np.argmin(ov)]), "mid-vowel": int(mid), "widest": int(valid[np.argmax(ov)])}
    frames = list(read_frames(mp4.read_bytes()))
    return {k: frames[i] for k, i in want.items()}


def _label(image, text: str):
    from PIL import ImageDraw

    from adapters.video import caption_font

    draw = ImageDraw.Draw(image)
    draw.text((6, 4), text, font=caption_font(15), fill=(255, 255, 255), stroke_width=2, stroke_fill=(0, 0, 0))
    return image


def screenshots(results: dict) -> None:
    from PIL import Image

    from geneface import landmarks as lm

    rows = []
    for name, (out, photo, _lite) in results.items():
        picked = _pick(out / "photo.mp4", photo["opening"])
        tiles = []
        for state, frame in picked.items():
            faces = lm.detect(frame)
            pts = lm.landmarks(frame, faces[0].box)
            cx, cy = pts[48:68].mean(0)
            half = 1.1 * lm.eye_distance(pts)
            box = (int(cx - half), int(cy - 0.7 * half), int(cx + half), int(cy + 0.9 * half))
            tile = Image.fromarray(frame).crop(box).resize((240, 192), Image.LANCZOS)
            tiles.append(_label(tile, f"{name.split()[0]}: {state}"))
        row = Image.new("RGB", (240 * len(tiles), 192))
        for i, t in enumerate(tiles):
            row.paste(t, (240 * i, 0))
        rows.append(row)
    sheet = Image.new("RGB", (rows[0].width, 192 * len(rows)))
    for i, r in enumerate(rows):
        sheet.paste(r, (0, 192 * i))
    _save(sheet, RESULTS / "face-mouth.png")
    framing_sheet({name: out for name, (out, _, _) in results.items()})


def framing_sheet(dirs: dict[str, Path]) -> None:
    """Per engine version: the photo engine's frame as sent (a chat's rectangular video) and the round video notes
    that `to_video_note` makes of the photo and lite videos, one second in."""
    from PIL import Image, ImageDraw

    from adapters.video import read_frames, to_video_note

    circle = Image.new("L", (256, 256), 0)
    ImageDraw.Draw(circle).ellipse((0, 0, 255, 255), fill=255)
    rows = []
    for name, out in dirs.items():
        tiles = []
        photo = (out / "photo.mp4").read_bytes()
        frame = list(read_frames(photo))[FPS]
        tiles.append(_label(Image.fromarray(frame).resize((256, 256), Image.LANCZOS), f"{name.split()[0]} photo: video"))
        for engine in ("photo", "lite"):
            mp4 = (out / f"{engine}.mp4").read_bytes()
            tile = Image.new("RGB", (256, 256), (240, 240, 240))
            tile.paste(Image.fromarray(list(read_frames(to_video_note(mp4, side=256)))[FPS]), (0, 0), circle)
            tiles.append(_label(tile, f"{name.split()[0]} {engine}: note"))
        rows.append(tiles)
    sheet = Image.new("RGB", (256 * 3, 256 * len(rows)))
    for r, tiles in enumerate(rows):
        for c, t in enumerate(tiles):
            sheet.paste(t, (256 * c, 256 * r))
    _save(sheet, RESULTS / "face-framing.png")


def _save(image, path: Path) -> None:
    from PIL import Image

    # 256 colours: a few hundred kB for all the screenshots kept in the repository
    image.convert("P", palette=Image.Palette.ADAPTIVE, colors=256).save(path, optimize=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd")
    r = sub.add_parser("render")
    r.add_argument("--dir", required=True)
    for q in (p, r):
        q.add_argument("--seconds", type=float, default=12.0)
        q.add_argument("--lite-steps", type=int, default=150)
    p.add_argument("--baseline", help="a commit whose engines render side by side with this checkout's")
    p.add_argument("--write", action="store_true", help="append the figures to bench/results/avatar.txt")
    p.add_argument("--shots", action="store_true", help="write bench/results/face-*.png")
    q = sub.add_parser("parts")
    q.add_argument("--tries", type=int, default=3)
    q.add_argument("--write", action="store_true")
    q = sub.add_parser("live")
    q.add_argument("--rounds", type=int, default=2)
    q.add_argument("--write", action="store_true")
    args = p.parse_args()
    if args.cmd == "render":
        cmd_render(args)
    elif args.cmd == "parts":
        cmd_parts(args)
    elif args.cmd == "live":
        cmd_live(args)
    else:
        cmd_run(args)


if __name__ == "__main__":
    main()
