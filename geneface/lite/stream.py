"""The lite engine for live talk: the features of `data.mel()`, computed a piece at a time and normalised as heard.

`mel()` sees a whole answer: Whisper's extractor floors each clip at its loudest bin less 8 (log10) and
the clip is set relative to its 95th-percentile frame. Here no frame may wait for the rest of the
answer, so the floor is fixed at where speech's loudest bins usually put it, and the reference level is
learnt from the frames heard so far, starting from speech's usual level and trusting what was heard more
as it grows. Both usual levels were measured on the shared en/fr/es speech clips (60 of each).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from geneface.lite.data import MEL_BINS, MEL_RATE, WINDOW, mel_filters
from geneface.lite.render import LiteAvatar, loop_index

if TYPE_CHECKING:  # the stream hands this driver its audio; the stream picks the driver, so it imports this module
    from geneface.stream import Tail

RATE = 16_000
HOP = RATE // MEL_RATE  # 160 samples: 10 ms
N_FFT = 400
LOG_FLOOR = -6.7  # the loudest bin of a clip is 1.2..1.5 (log10 power; medians per language), Whisper floors 8 below it
PRIOR_LEVEL = 0.40  # 95th-percentile frame of (log10 + 4) / 4: medians 0.34 (fr) .. 0.42 (en)
PRIOR_FRAMES = 200  # the usual level counts as 2 s of speech heard
MEMORY = 3000  # the level is learnt from the last 30 s
VOICED = (LOG_FLOOR + 4) / 4 + 0.25  # frames 10 dB above the floor count towards it


class LiteDriver:
    def __init__(self, avatar: LiteAvatar, size: int) -> None:
        self.avatar = avatar
        self.fps = avatar.fps
        self.per = MEL_RATE / self.fps
        w, h = avatar.frame_size
        scale = size / max(h, w)
        self.size = (max(2, int(round(w * scale / 2)) * 2), max(2, int(round(h * scale / 2)) * 2))
        self.filters = np.ascontiguousarray(mel_filters().T, np.float32)  # (201, 80)
        self.window = np.hanning(N_FFT + 1)[:-1].astype(np.float32)
        # a frame's last mel frame ends half an FFT window after its centre
        self.lookahead = ((self._start(0) + WINDOW - 1) * HOP + N_FFT // 2) / RATE - 1 / self.fps
        self.heard = np.zeros(0, np.float32)  # mean of each mel frame heard whole, oldest first
        self.heard_total = 0
        self.reset()

    def reset(self) -> None:
        self.base = self.heard_total  # where this stream's mel frame 0 goes in `heard`
        self.next_mel = 0

    def _start(self, k: int) -> int:
        """Frame k's first mel frame: the window is centred on the frame, as `data.mel_windows` centres it."""
        return int(np.round(k * self.per + self.per / 2 - WINDOW / 2))

    def draw(self, tail: Tail, k0: int, k1: int, poses: list[int]) -> list[np.ndarray]:
        s0, s1 = self._start(k0), self._start(k1 - 1) + WINDOW
        j0 = min(self.next_mel, s0)
        raw = self._raw(tail, j0, s1)
        final = self._final_samples(tail)
        while self.next_mel < s1 and self.next_mel * HOP + N_FFT // 2 <= final:
            self._learn(float(raw[self.next_mel - j0].mean()))
            self.next_mel += 1
        windows = np.empty((k1 - k0, MEL_BINS, WINDOW), np.float32)
        for i, k in enumerate(range(k0, k1)):
            s = self._start(k)
            # the level from frames heard before this frame's window: the same however the audio was cut
            windows[i] = ((raw[s - j0:s - j0 + WINDOW] - self._level(self.base + s)) * 2).T
        idx = [loop_index(len(self.avatar.loaded), p) for p in poses]
        return list(self.avatar.draw(idx, windows, self.size).cpu().numpy())

    def idle(self, pose: int) -> np.ndarray:
        silence = ((LOG_FLOOR + 4) / 4 - self._level(self.heard_total)) * 2
        windows = np.full((1, MEL_BINS, WINDOW), silence, np.float32)
        return self.avatar.draw([loop_index(len(self.avatar.loaded), pose)], windows, self.size).cpu().numpy()[0]

    def _raw(self, tail: Tail, j0: int, j1: int) -> np.ndarray:
        """Mel frames j0..j1-1 as Whisper's (log10 + 4) / 4, frame j centred on 16 kHz sample j * HOP."""
        x = self._samples(tail, j0 * HOP - N_FFT // 2, (j1 - 1) * HOP + N_FFT // 2)
        frames = np.lib.stride_tricks.sliding_window_view(x, N_FFT)[::HOP]
        power = np.abs(np.fft.rfft(frames * self.window, axis=1)) ** 2
        log = np.log10(np.maximum(power.astype(np.float32) @ self.filters, 1e-10))
        return (np.maximum(log, LOG_FLOOR) + 4) / 4

    def _samples(self, tail: Tail, a: int, b: int) -> np.ndarray:
        """16 kHz samples [a, b) of the tail; each is what resampling the whole stream at once would give it,
        once the stream has audio `margin` samples past it (before that, silence stands for the audio to come)."""
        if tail.rate == RATE:
            return tail.get(a, b)
        from scipy.signal import resample_poly

        up, down, margin = self._ratio(tail.rate)
        # start on a multiple of `down`: the slice's output then falls on the whole stream's 16 kHz grid
        s = ((a * down) // up - margin) // down * down
        e = -(-(b * down) // up) + margin
        y = resample_poly(tail.get(s, e), up, down)
        off = s * up // down
        return y[a - off:b - off].astype(np.float32)

    def _final_samples(self, tail: Tail) -> int:
        """16 kHz samples that later audio can no longer change."""
        if tail.rate == RATE:
            return tail.end
        up, down, margin = self._ratio(tail.rate)
        return max(0, (tail.end - margin) * up // down)

    @staticmethod
    def _ratio(rate: int) -> tuple[int, int, int]:
        g = math.gcd(RATE, rate)
        up, down = RATE // g, rate // g
        # scipy's default filter reaches 10 * max(up, down) upsampled samples to each side
        return up, down, math.ceil(10 * max(up, down) / up) + 2

    def _learn(self, value: float) -> None:
        self.heard = np.append(self.heard, np.float32(value))
        self.heard_total += 1
        if len(self.heard) > 2 * MEMORY:
            self.heard = self.heard[-MEMORY:]

    def _level(self, before: int) -> float:
        """The reference level from the mel frames heard before index `before` (of `heard_total`)."""
        first = self.heard_total - len(self.heard)
        stop = int(np.clip(before - first, 0, len(self.heard)))
        seen = self.heard[max(0, stop - MEMORY):stop]
        seen = seen[seen > VOICED]  # pauses tell nothing about how loud the voice is
        if not len(seen):
            return PRIOR_LEVEL
        return (PRIOR_FRAMES * PRIOR_LEVEL + len(seen) * float(np.percentile(seen, 95))) / (PRIOR_FRAMES + len(seen))
