"""Choosing how a rendered answer video goes out: a round video note when it fits, else a normal video."""
from __future__ import annotations

from dataclasses import dataclass

# what the Bot API accepts as a video note: square, `length` under 640 px, at most a minute
NOTE_SIDE = 480  # the largest side we send
NOTE_MAX_SECONDS = 60.0


@dataclass(frozen=True)
class OutgoingVideo:
    method: str  # "video_note" | "video"
    data: bytes
    seconds: float
    side: int = 0


def prepare(mp4: bytes, seconds: float) -> OutgoingVideo:
    """Square-crop and re-encode a short answer as a video note; leave a long one as it is (sendVideo)."""
    if seconds > NOTE_MAX_SECONDS:
        return OutgoingVideo("video", mp4, seconds)
    from adapters.media import probe
    from adapters.video import to_video_note

    info = probe(mp4)
    # never upscale: a 256 px avatar stays 256 px, only a larger picture comes down to NOTE_SIDE
    shorter = min(info["width"] or NOTE_SIDE, info["height"] or NOTE_SIDE)
    side = max(16, min(NOTE_SIDE, shorter) // 2 * 2)
    return OutgoingVideo("video_note", to_video_note(mp4, side=side), seconds, side)
