"""The English WER gain of beam 5 over greedy (bench/results/language-asr.txt) on a clip where it shows. Speech
from Debian's asterisk-core-sounds-en-wav."""
from __future__ import annotations

from pathlib import Path

from adapters.media import decode_audio


def test_where_greedy_misreads_the_beams_reading_is_what_comes_out(engines):
    # greedy wrote "The Speed Dialantry Uve access is empty." at confidence 0.46; beam 5 reads it right (0.65):
    # a clip where the beam's English WER gain was made
    clip = Path("/usr/share/asterisk/sounds/en/speed-dial-empty.wav")
    text = engines.recognizer.transcribe_sync(decode_audio(clip.read_bytes()), "en").text
    assert "speed dial entry you've accessed is empty" in text.lower(), text
