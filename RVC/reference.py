"""Checks on a voice's reference recordings, before anything is trained on them.

Each refusal is a BadReference whose message tells the admin what to record instead.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.errors import BadReference
from core.types import Audio
from RVC.features import RATE, to_rate

FRAME = 320  # 20 ms


@dataclass(frozen=True)
class ReferenceLimits:
    min_speech_seconds: float = 2.0
    silence_db: float = -45.0  # frames quieter than this are pauses
    max_clipped_fraction: float = 0.002
    min_speech_ratio: float = 0.5  # of the loud frames, the share the VAD hears as speech
    min_speaker_agreement: float = 0.82  # the two halves' centroids when the stretches are split in two
    speaker_window_seconds: float = 3.0
    # clip against clip (resemblyzer d-vectors; measured on the shared en/fr/es sets, see clip_outlier)
    min_clip_to_rest: float = 0.80
    min_clip_pair: float = 0.72
    min_clip_seconds: float = 2.0  # shorter clips give embeddings too noisy to judge


# the least speech each training profile (RVC/jobs.py) learns from: the add command and the job both use it
MIN_SPEECH_SECONDS = {"full": 30.0, "tiny": 2.0}


def limits_for(profile: str, min_seconds: float | None = None) -> "ReferenceLimits":
    """The one rule set for a voice trained with `profile` (checked at intake, and again by the job)."""
    if profile not in MIN_SPEECH_SECONDS:
        raise ValueError(f"unknown training profile {profile!r}")
    return ReferenceLimits(min_speech_seconds=MIN_SPEECH_SECONDS[profile] if min_seconds is None else float(min_seconds))


@dataclass(frozen=True)
class ReferenceReport:
    seconds: float
    speech_seconds: float
    clipped_fraction: float
    speech_ratio: float
    speaker_agreement: float | None  # None: too little speech to judge


def _frame_db(x: np.ndarray) -> np.ndarray:
    n = len(x) // FRAME
    if n == 0:
        return np.full(1, -120.0)
    frames = x[: n * FRAME].reshape(n, FRAME).astype(np.float64)
    return 10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-12)


def _speech_probability(x: np.ndarray) -> np.ndarray:
    """Silero VAD's per-window speech probability (the ONNX model faster-whisper bundles)."""
    from faster_whisper.vad import get_vad_model

    model = get_vad_model()
    window = 512
    n = len(x) // window
    if n == 0:
        return np.zeros(0)
    probs = model(np.ascontiguousarray(x[: n * window], dtype=np.float32))
    return np.asarray(probs).reshape(-1)[:n]


def speaker_agreement(clips: list[np.ndarray], window_s: float) -> tuple[float | None, list[int]]:
    """Cosine between the two groups the speech stretches fall into (near 1 for one voice, low for two), and
    the clips that are mostly in the smaller group: who to name when the agreement is too low.

    Stretches are split by 2-means on their embeddings (seeded with the least alike pair); a group smaller
    than a fifth of the stretches counts as stray noise, not as a second speaker.
    """
    from RVC.speaker import centroid, embed

    window = int(window_s * RATE)
    stretches, owners = [], []
    for index, x in enumerate(clips):
        n = len(x) // FRAME * FRAME
        voiced = x[:n][np.repeat(_frame_db(x) > -40, FRAME)] if n else x
        cut = [voiced[a:a + window] for a in range(0, len(voiced) - window + 1, window)]
        stretches += cut
        owners += [index] * len(cut)
    if len(stretches) < 4:
        return None, []
    embs = np.stack([embed(s) for s in stretches])
    sims = embs @ embs.T
    i, j = np.unravel_index(np.argmin(sims), sims.shape)
    centres = embs[[i, j]]
    for _ in range(10):
        side = np.argmax(embs @ centres.T, axis=1)
        if side.min() == side.max():
            return 1.0, []
        centres = np.stack([centroid(list(embs[side == k])) for k in (0, 1)])
    if min(np.sum(side == 0), np.sum(side == 1)) < max(2, len(embs) // 5):
        return 1.0, []
    minority = 1 if np.sum(side == 1) < np.sum(side == 0) else 0
    held = np.array(owners)
    share = {c: float(np.mean(side[held == c] == minority)) for c in sorted(set(owners))}
    named = [c for c, part in share.items() if part >= 0.5] or [max(share, key=lambda c: share[c])]
    return float(centres[0] @ centres[1]), named


def clip_outlier(clips: list[np.ndarray], limits: ReferenceLimits) -> int | None:
    """The index of a clip that sounds like someone else than the rest, or None.

    One embedding per clip (long enough to judge). A clip is someone else when it is far from the mean of
    the others (sets of three or more), or when any two clips are far apart. On 20 shared clips of 3 s or
    more per language (English and Spanish: one speaker; French: another), 500 random sets each: mixed
    sets of 4-8 clips (3+1, 1+3, 2+2, 6+1, 4+4) were caught 96-100 % of the time, a lone pair 75 %;
    one-language sets were refused 0 % (en, fr) and up to 6 % (es, 3 clips). The embeddings also move with
    the language: one speaker's English and Spanish clips mixed were refused about 70 % of the time.
    """
    from RVC.speaker import centroid, embed

    judged = [i for i, x in enumerate(clips) if len(x) >= limits.min_clip_seconds * RATE]
    if len(judged) < 2:
        return None
    embs = np.stack([embed(clips[i]) for i in judged])
    sims = embs @ embs.T
    if len(judged) >= 3:
        to_rest = [float(embs[k] @ centroid([e for j, e in enumerate(embs) if j != k])) for k in range(len(judged))]
        worst = int(np.argmin(to_rest))
        if to_rest[worst] < limits.min_clip_to_rest:
            return judged[worst]
    np.fill_diagonal(sims, 1.0)
    if sims.min() < limits.min_clip_pair:
        a, b = np.unravel_index(np.argmin(sims), sims.shape)
        # of the two, the one less like everyone else
        return judged[a] if sims[a].mean() < sims[b].mean() else judged[b]
    return None


def _recordings(indexes: list[int], new_from: int) -> str:
    """"recordings 3 and 4 of those just sent", "recording 2 kept earlier" ..., numbered as the admin sent them."""
    def named(numbers: list[int], where: str) -> str:
        listed = ", ".join(map(str, numbers[:-1])) + f" and {numbers[-1]}" if len(numbers) > 1 else str(numbers[0])
        return f"recording{'s' if len(numbers) > 1 else ''} {listed} {where}"

    new = [i - new_from + 1 for i in sorted(indexes) if i >= new_from]
    kept = [i + 1 for i in sorted(indexes) if i < new_from]
    return " and ".join(([named(new, "of those just sent")] if new else []) + ([named(kept, "kept earlier")] if kept else []))


def check_reference(clips: list[Audio], limits: ReferenceLimits | None = None, *, speakers: bool = True,
                    new_from: int = 0) -> ReferenceReport:
    """Refuse (BadReference) recordings a voice can't be trained on. `new_from`: clips before it were
    accepted earlier (a voice getting more recordings); they count towards the speech and speaker checks."""
    limits = limits or ReferenceLimits()
    xs = [to_rate(c.samples, c.sample_rate, RATE) for c in clips]
    seconds = sum(len(x) for x in xs) / RATE
    db = np.concatenate([_frame_db(x) for x in xs])
    loud = db > limits.silence_db
    if not loud.any() or float(np.max(db)) < limits.silence_db + 5:
        raise BadReference("The recording is silent. Please record the voice speaking, close to the microphone.")
    clipped = float(np.mean(np.concatenate([np.abs(x) >= 0.985 for x in xs])))
    if clipped > limits.max_clipped_fraction:
        raise BadReference(f"The recording is clipped ({clipped:.1%} of it at full scale): it was too loud. "
                           "Please record again a little further from the microphone or with lower gain.")
    probs = np.concatenate([_speech_probability(x) for x in xs])
    loud_share = max(1, int(round(loud.mean() * len(probs))))
    speech_ratio = float(np.sum(probs > 0.5) / loud_share) if len(probs) else 0.0
    speech_seconds = float(np.sum(probs > 0.5)) * 512 / RATE
    if speech_ratio < limits.min_speech_ratio:
        raise BadReference("That sounds like music or noise rather than one person speaking. "
                           "Please send a recording of the voice alone, without music.")
    if speech_seconds < limits.min_speech_seconds:
        raise BadReference(f"The recording has only {speech_seconds:.1f} s of speech; at least "
                           f"{limits.min_speech_seconds:.0f} s are needed.")
    agreement, apart = speaker_agreement(xs, limits.speaker_window_seconds) if speakers else (None, [])
    if agreement is not None and agreement < limits.min_speaker_agreement:
        raise BadReference(f"The recordings seem to hold more than one speaker: {_recordings(apart, new_from)} "
                           f"{'sounds' if len(apart) == 1 else 'sound'} like someone else than the rest. "
                           "Please send recordings of one person only.")
    odd = clip_outlier(xs, limits) if speakers else None
    if odd is not None:
        raise BadReference(f"The recordings seem to hold more than one speaker: {_recordings([odd], new_from)} sounds "
                           "like someone else. Please send recordings of one person only.")
    return ReferenceReport(seconds, speech_seconds, clipped, speech_ratio, agreement)
