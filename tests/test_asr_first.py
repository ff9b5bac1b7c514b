"""tiny.en decodes greedily first and runs its beam search only where greedy is unsure: a clear question costs
one greedy decode (the first answer waits for it), an unsure one gets the beam's transcript as before. Speech from
Debian's asterisk-core-sounds-en-wav."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from adapters.asr_whisper import Decoding
from adapters.media import decode_audio

CLIP = Path("/usr/share/asterisk/sounds/en/agent-alreadyon.wav")  # "That agent is already logged on. ..."


def searches(recognizer, decoding: Decoding) -> tuple[list[int], str]:
    """The beam sizes tiny.en decoded the clip with, and the transcript it gave."""
    model = recognizer._model("en")
    plain = model.transcribe
    sizes: list[int] = []

    def counted(*args, **kwargs):
        sizes.append(kwargs["beam_size"])
        return plain(*args, **kwargs)

    kept, recognizer.english = recognizer.english, decoding
    model.transcribe = counted
    try:
        text = recognizer.transcribe_sync(decode_audio(CLIP.read_bytes()), "en").text
    finally:
        del model.transcribe
        recognizer.english = kept
    return sizes, text


def test_a_clear_question_is_decoded_once_greedily_by_default(engines):
    sizes, text = searches(engines.recognizer, engines.recognizer.english)
    assert sizes == [1], sizes
    assert "already logged on" in text.lower(), text


def test_an_unsure_greedy_decode_gets_the_beams_transcript(engines):
    beam = replace(engines.recognizer.english, greedy_above=0.0)
    unsure_everywhere = replace(beam, greedy_above=0.999)  # no decode is that sure
    sizes, text = searches(engines.recognizer, unsure_everywhere)
    assert sizes == [1, beam.beam_size], sizes
    assert text == searches(engines.recognizer, beam)[1]


def test_where_greedy_misreads_the_beams_reading_is_what_comes_out(engines):
    # greedy wrote "The Speed Dialantry Uve access is empty." at confidence 0.46; beam 5 reads it right (0.65):
    # the clip where the beam's English WER gain was made stays won
    clip = Path("/usr/share/asterisk/sounds/en/speed-dial-empty.wav")
    text = engines.recognizer.transcribe_sync(decode_audio(clip.read_bytes()), "en").text
    assert "speed dial entry you've accessed is empty" in text.lower(), text
