"""The quality gate every trained voice passes before it is marked ready.

After training, the new voice speaks fixed test sentences (the base TTS says them, the voice converts
them) and is scored on two things a listener notices:
- speaker similarity: resemblyzer cosine of each converted sentence to the centroid of the speaker's
  recordings, taken from clips the training never saw when the voice has enough of them;
- intelligibility: the bundled English recognizer transcribes the converted sentences and the base
  TTS's own, both scored with the project's one normaliser (adapters/wer.py).
Below the limits the job fails with the scores and what to do; the voice is never marked ready.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from core.errors import VoiceQualityTooLow

log = logging.getLogger(__name__)

# Spoken by the base TTS (Piper, English) and converted: everyday words, most English consonants and
# vowels, a number, a question. None of them comes from the corpora the tests and benches train on.
TEST_SENTENCES = (
    "The weather should clear up by the afternoon, so bring a light jacket.",
    "Please call me back when you get home tonight.",
    "She bought three green apples and a loaf of fresh bread.",
    "Could you tell me which platform the next train leaves from?",
    "My brother fixed the old bicycle in less than an hour.",
    "We will meet at the library on Thursday at four o'clock.",
    "Thank you for waiting, your order is almost ready.",
    "Turn left at the bridge and follow the river to the village.",
)

# Clips held apart from training (for the similarity centroid) only when a voice has at least this many;
# then every HOLD_EVERY-th clip is held apart, the training keeping the rest.
MIN_CLIPS_TO_HOLD_APART = 8
HOLD_EVERY = 8

Converter = Callable[[np.ndarray, int], tuple[np.ndarray, int]]


@dataclass(frozen=True)
class GateLimits:
    min_similarity: float = 0.70
    max_wer_gap: float = 0.15  # converted WER minus the base TTS's WER on the same sentences
    cpu: bool = False  # the voice was fine-tuned on a CPU: a refusal says that cloning needs a GPU


# A voice fine-tuned on a CPU is held to the CPU goal itself (similarity >= 0.75, WER within 5 points; the speaker's
# own recordings score about what Piper does, so Piper stands in for them): the CPU path measures short of that
# goal on WER (bench/results/lite_voice_goals.txt), so a CPU voice that does too is refused rather than served.
CPU_LIMITS = GateLimits(min_similarity=0.75, max_wer_gap=0.05, cpu=True)


@dataclass(frozen=True)
class VoiceScores:
    similarity: float  # converted sentences → the speaker's centroid, mean cosine
    base_similarity: float  # the unconverted base TTS → the same centroid, for scale
    wer: float  # of the converted sentences
    base_wer: float  # of the base TTS's own rendering of them
    sentences: int
    centroid_clips: int
    held_apart: bool  # the centroid's clips were kept out of training
    seconds: float  # how long scoring took
    passed: bool = False
    artifact: str = ""

    def summary(self) -> str:
        return (f"similarity {self.similarity:.2f} (base voice {self.base_similarity:.2f}), "
                f"WER {self.wer:.0%} (base voice {self.base_wer:.0%})")

    def as_params(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def judge(scores: VoiceScores, limits: GateLimits) -> list[str]:
    """What is below the limits, in words; empty when the voice passes."""
    short = []
    if not scores.similarity >= limits.min_similarity:
        short.append(f"similarity {scores.similarity:.2f} is below {limits.min_similarity:.2f}")
    if not scores.wer <= scores.base_wer + limits.max_wer_gap:
        short.append(f"WER {scores.wer:.0%} is more than {limits.max_wer_gap * 100:.0f} points above "
                     f"the base voice's {scores.base_wer:.0%}")
    return short


def held_apart(paths: Sequence[Path]) -> list[Path]:
    """The clips kept out of training for the gate (none when there are too few to spare)."""
    paths = sorted(paths)
    if len(paths) < MIN_CLIPS_TO_HOLD_APART:
        return []
    return [p for i, p in enumerate(paths) if i % HOLD_EVERY == HOLD_EVERY - 1]


def training_clips(folder: Path) -> list[Path]:
    """A voice folder's clips the training may use: all but those held apart for the gate."""
    paths = sorted(folder.glob("clip-*.wav"))
    kept = set(held_apart(paths))
    return [p for p in paths if p not in kept]


def _transcribe(asr, samples: np.ndarray, rate: int) -> str:
    from core.errors import NoSpeech
    from core.types import Audio

    try:
        return asr.transcribe_sync(Audio(np.asarray(samples, np.float32), rate), "en").text
    except NoSpeech:
        return ""  # nothing heard: every word of the sentence counts as an error


def score_voice(convert: Converter, centroid_clips: Sequence[np.ndarray], *, tts, asr, held: bool,
                sentences: Sequence[str] = TEST_SENTENCES, rate: int = 16_000) -> VoiceScores:
    """Speak `sentences` with `tts`, convert them, score similarity and WER (both also for the unconverted TTS)."""
    from adapters.wer import wer
    from RVC.speaker import centroid, embed

    t0 = time.perf_counter()
    if not centroid_clips:
        raise ValueError("the gate needs at least one recording of the speaker")
    centre = centroid([embed(np.asarray(c, np.float32), rate) for c in centroid_clips])
    sims, base_sims, heard, base_heard = [], [], [], []
    for text in sentences:
        spoken = tts.synthesize_sync(text)
        out, out_rate = convert(spoken.samples, spoken.sample_rate)
        out = np.nan_to_num(np.asarray(out, np.float32))
        sims.append(float(np.dot(embed(out, out_rate), centre)) if out.size else 0.0)
        base_sims.append(float(np.dot(embed(spoken.samples, spoken.sample_rate), centre)))
        heard.append(_transcribe(asr, out, out_rate) if out.size else "")
        base_heard.append(_transcribe(asr, spoken.samples, spoken.sample_rate))
    return VoiceScores(similarity=float(np.mean(sims)), base_similarity=float(np.mean(base_sims)),
                       wer=wer(list(sentences), heard), base_wer=wer(list(sentences), base_heard),
                       sentences=len(sentences), centroid_clips=len(centroid_clips), held_apart=held,
                       seconds=time.perf_counter() - t0)


def refusal(scores: VoiceScores, short: list[str], limits: GateLimits | None = None) -> str:
    head = f"The voice did not pass the quality check ({scores.summary()}): {'; '.join(short)}, so it is not used. "
    if limits is not None and limits.cpu:
        return head + ("Cloning a voice needs a GPU: it was trained on this machine's CPU, where the training is too "
                       "short to keep every word clear. Run `doppel worker` on a machine with a GPU and train it again; "
                       "5 minutes or more of one person speaking clearly is enough there.")
    return (head + "Record more of the voice (5 minutes or more of one person speaking clearly, without music, echo or "
            "background noise) and train again, on a machine with a GPU if you can: training on a CPU is short "
            "and rarely learns the voice well enough.")


def what_to_do(quality: dict) -> str:
    """For a refused voice, what the admin can do, from the scores stored on it (`params["quality"]`); "" if it passed."""
    if quality.get("passed"):
        return ""
    steps = []
    if quality.get("cpu"):
        steps.append("train it again where `doppel worker` has a GPU (a CPU's training is too short to keep every word)")
    if quality.get("similarity", 0.0) < quality.get("min_similarity", GateLimits().min_similarity):
        steps.append("add more of the person's speech (5 minutes or more of one person)")
    steps.append("use clean recordings (no music, echo or background noise)")
    return "To do: " + "; ".join(steps) + "."


def _score_artifact(folder: Path, artifact: Path, cache: Path) -> VoiceScores:
    from adapters.asr_whisper import WhisperRecognizer
    from adapters.media import decode_audio
    from adapters.tts_piper import PiperSynthesizer, bundled_voice
    from adapters.whisper_models import english_tiny_dir
    from RVC.engines.lite import LiteEngine
    from RVC.features import bundled_content, to_rate

    paths = sorted(folder.glob("clip-*.wav"))
    held = held_apart(paths)
    clips = [decode_audio(p.read_bytes()) for p in (held or paths)]
    engine = LiteEngine(bundled_content(cache), runtime="torch")  # scored once, so no onnxruntime export
    params = {"artifact": str(artifact)}
    return score_voice(lambda x, r: engine.convert(x, r, params), [to_rate(c.samples, c.sample_rate) for c in clips],
                       tts=PiperSynthesizer(*bundled_voice()), asr=WhisperRecognizer(english_tiny_dir(), None),
                       held=bool(held))


async def gate_trained_voice(ctx, artifact: Path, step: int, limits: GateLimits | None = None) -> VoiceScores:
    """Score a voice job's new artifact, store the scores on the voice, and raise VoiceQualityTooLow below the limits.

    Called by the voice job after the artifact is written and before the voice is marked ready.
    """
    from storage.voices import VoiceRepository

    limits = limits or GateLimits()
    folder = Path(ctx.params["dir"])
    cache = Path(ctx.params.get("cache_dir") or folder.parents[1] / "cache")
    await ctx.report(step=step, progress=0.96, log_line="checking the new voice's quality")
    scores = await asyncio.to_thread(_score_artifact, folder, Path(artifact), cache)
    short = judge(scores, limits)
    scores = VoiceScores(**{**asdict(scores), "passed": not short, "artifact": Path(artifact).name})
    # only the scores (and the limits they were held to, so a refusal can say what to do): whether a version serves
    # is not the gate's business (a refused v2 leaves v1 serving)
    quality = {**scores.as_params(), "cpu": limits.cpu, "min_similarity": limits.min_similarity,
               "max_wer_gap": limits.max_wer_gap}
    await VoiceRepository(ctx.sessions).update_params(ctx.job.target, {"quality": quality})
    log.info("voice %s: %s (%s)", ctx.job.target, scores.summary(), "passed" if not short else "refused")
    await ctx.report(step=step, progress=0.99, log_line=f"quality: {scores.summary()}")
    if short:
        raise VoiceQualityTooLow(refusal(scores, short, limits))
    return scores
