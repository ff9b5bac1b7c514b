"""Where a talking head sits in its frame: one fixed square around the face, head and shoulders.

A chat shows a talking head small (a round video note, a phone's message list), so the face must fill it:
the whole upload shown as it came was a small head among its background. The square is found once per
avatar (the photo's landmarks, the lite video's crop boxes over its idle loop) and never moves with the
mouth or the eyes, so the picture does not jitter.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# the face, brows to chin as dlib's landmarks span it, over the square's side: a detector's box around the
# same face measures about as tall, so ≥ 45 % of a round video note is met with room to spare
FACE_FILL = 0.5
# the face's middle sits this far down the square: hair fits above, the neck and shoulders below
FACE_CENTRE = 0.48
# a face whose middle the picture's edge pushes further than this off the square's middle is refused
MAX_OFF_CENTRE = 0.2
MIN_FACE_PX = 56  # brows to chin: fewer pixels than this, upscaled to the video's size, is a blur
OUTPUT_SIDE = 512


@dataclass(frozen=True)
class Square:
    x: int
    y: int
    side: int
    off_centre: float  # how far the face's middle is from where it should sit, in sides

    def cut(self, image: np.ndarray) -> np.ndarray:
        return image[self.y:self.y + self.side, self.x:self.x + self.side]


def face_height(points: np.ndarray) -> float:
    """Brows to chin, in pixels."""
    return float(points[8, 1] - points[17:27, 1].min())


def around_landmarks(points: np.ndarray, height: int, width: int) -> Square:
    """The square of an h×w picture that frames the face of these 68 landmarks."""
    brow, chin = float(points[17:27, 1].min()), float(points[8, 1])
    cx = float(points[27:36, 0].mean())  # the nose: the face's middle across, whichever way the jaw turns
    return around(cx, (brow + chin) / 2, chin - brow, height, width)


def around(cx: float, cy: float, face_h: float, height: int, width: int) -> Square:
    """The square with the face (middle `cx`, `cy`, `face_h` tall) at FACE_FILL and FACE_CENTRE, kept inside
    the picture: where the picture ends first, the square stops there and the face sits off its middle."""
    side = int(min(height, width, max(16.0, face_h / FACE_FILL)))
    side -= side % 2
    x = int(np.clip(round(cx - side / 2), 0, width - side))
    y = int(np.clip(round(cy - FACE_CENTRE * side), 0, height - side))
    off = max(abs(cx - (x + side / 2)), abs(cy - (y + FACE_CENTRE * side))) / side
    return Square(x, y, side, float(off))
