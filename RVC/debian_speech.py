"""Speech from Debian's prompt packages: the development speakers the lite recipe is measured on, and the real
voices a base may learn from.

The packages are fetched with `apt-get download` and unpacked with `dpkg-deb -x` into a folder of their own rather
than installed: `asterisk-prompt-es-co` and `-fr-armelle` conflict with `asterisk-core-sounds-es`/`-fr` (installing
one removes the other), and reading a folder needs no root. `DOPPEL_DEBIAN_SPEECH` moves that folder.

Development speakers (issue 23) are people the base never hears: their packages, and the Italian and Russian core
sounds kept for independent checks, are refused by every builder of training data (`check_allowed`).
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RATE = 16_000
GSM_FRAME = (33, 0.02)  # GSM 06.10: 33 bytes for every 20 ms


@dataclass(frozen=True)
class DevSpeaker:
    name: str
    language: str
    package: str


DEV_SPEAKERS = {
    "it": DevSpeaker("menardi", "it", "asterisk-prompt-it-menardi-wav"),
    "es": DevSpeaker("es-co", "es", "asterisk-prompt-es-co"),
    "fr": DevSpeaker("armelle", "fr", "asterisk-prompt-fr-armelle"),
}
# never trained or tuned on: the development speakers in every encoding, and the independent checks
NEVER_TRAIN = frozenset(
    {s.package for s in DEV_SPEAKERS.values()}
    | {"asterisk-prompt-it-menardi", "asterisk-prompt-it-menardi-gsm", "asterisk-prompt-it-menardi-alaw",
       "asterisk-prompt-it"}
    | {f"asterisk-core-sounds-{lang}{enc}" for lang in ("it", "ru") for enc in ("", "-wav", "-gsm", "-g722")})
# single words, letters, spelling alphabets and silence: not the running speech a voice is cloned from
WORD_FOLDERS = frozenset({"digits", "letters", "phonetic", "ICAO", "silence"})
TRAIN_SECONDS = 300.0


def check_allowed(package: str) -> None:
    if package in NEVER_TRAIN or package.startswith(("asterisk-core-sounds-it", "asterisk-core-sounds-ru")):
        raise ValueError(f"{package} is a development or check speaker: nothing may be trained on it")


def speech_root() -> Path:
    return Path(os.environ.get("DOPPEL_DEBIAN_SPEECH") or ROOT / "var" / "debian-speech")


def unpacked(package: str, root: Path | None = None) -> Path:
    """The package's files under a folder of their own, downloaded and unpacked the first time."""
    root = root or speech_root()
    folder = root / package
    if (folder / ".unpacked").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    debs = root / "debs"
    debs.mkdir(exist_ok=True)
    found = sorted(debs.glob(f"{package}_*.deb"))
    if not found:
        subprocess.run(["apt-get", "download", package], cwd=debs, check=True, capture_output=True)
        found = sorted(debs.glob(f"{package}_*.deb"))
    if not found:
        raise FileNotFoundError(f"apt-get download {package} gave no .deb")
    subprocess.run(["dpkg-deb", "-x", str(found[-1]), str(folder)], check=True)
    (folder / ".unpacked").touch()
    return folder


def audio_files(folder: Path) -> list[Path]:
    """Every recording under `folder`, one file per prompt (WAV preferred where a prompt has several encodings)."""
    by_prompt: dict[Path, Path] = {}
    for path in sorted(folder.rglob("*")):
        if path.suffix not in (".wav", ".gsm"):
            continue
        key = path.relative_to(folder).with_suffix("")
        if key not in by_prompt or path.suffix == ".wav":
            by_prompt[key] = path
    return [by_prompt[k] for k in sorted(by_prompt)]


def package_audio(package: str) -> list[Path]:
    """A package's recordings: where it is installed, its own files; else unpacked from its .deb."""
    try:
        listed = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True, check=False)
    except OSError:  # no dpkg at all (a machine the kit was carried to): the unpacked copy
        return audio_files(unpacked(package))
    if listed.returncode == 0:
        files = [Path(line) for line in listed.stdout.split() if line.endswith((".wav", ".gsm"))]
        files = [f for f in files if f.is_file()]
        if files:
            return sorted(files)
    return audio_files(unpacked(package))


def seconds_of(path: Path) -> float:
    """A recording's length from its header or size, without decoding it."""
    if path.suffix == ".gsm":
        return path.stat().st_size / GSM_FRAME[0] * GSM_FRAME[1]
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


def read_audio(path: Path) -> np.ndarray:
    """Mono float32 at 16 kHz; raw GSM has no header, so FFmpeg is told its format."""
    import av

    with av.open(str(path), format="gsm" if path.suffix == ".gsm" else None) as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=RATE)
        chunks = [out.to_ndarray().reshape(-1) for frame in container.decode(stream) for out in resampler.resample(frame)]
        chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)


@dataclass(frozen=True)
class DevSplit:
    speaker: DevSpeaker
    train: list[Path]
    held: list[Path]

    @property
    def train_seconds(self) -> float:
        return sum(seconds_of(p) for p in self.train)

    @property
    def held_seconds(self) -> float:
        return sum(seconds_of(p) for p in self.held)


def _order_key(folder: Path, path: Path) -> str:
    # a hash of the path inside the package: the same order on every machine, unrelated to the prompts' topics
    return hashlib.sha256(path.relative_to(folder).as_posix().encode()).hexdigest()


def dev_split(language: str, train_seconds: float = TRAIN_SECONDS, root: Path | None = None) -> DevSplit:
    """A development speaker's running-speech prompts: the first `train_seconds` of them (in a fixed hashed order)
    to train on, every other one held apart for scoring similarity."""
    speaker = DEV_SPEAKERS[language]
    train, held = split_prompts(unpacked(speaker.package, root), train_seconds)
    if not held:
        raise ValueError(f"{speaker.package} has no more than {train_seconds:.0f} s of speech: nothing to hold apart")
    return DevSplit(speaker, train, held)


def split_prompts(folder: Path, train_seconds: float) -> tuple[list[Path], list[Path]]:
    """A package's running-speech prompts in a fixed hashed order: the first `train_seconds` of them, and the rest."""
    prompts = [p for p in audio_files(folder) if not WORD_FOLDERS & set(p.relative_to(folder).parts[:-1])]
    prompts = [p for p in prompts if seconds_of(p) >= 0.5]
    prompts.sort(key=lambda p: _order_key(folder, p))
    train: list[Path] = []
    total = 0.0
    for p in prompts:
        if total >= train_seconds:
            break
        train.append(p)
        total += seconds_of(p)
    return train, prompts[len(train):]
