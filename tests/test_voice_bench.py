"""The voice bench is honest: a voice with no speech scores 100 % WER (no crash), and no scored clip is in the centroid."""
import json

import numpy as np

from bench.voice_quality import SPLIT, _clips, _texts, measure, report


def test_the_centroid_never_holds_a_scored_recording():
    split = json.loads(SPLIT.read_text())
    assert len(split["eval"]) >= 20 and not set(split["eval"]) & set(split["reference"] + split["train"])


def test_a_voice_that_outputs_no_speech_scores_100_percent_wer(engines):
    split = json.loads(SPLIT.read_text())
    names = split["eval"][:2]
    texts = _texts()
    own, reference = _clips(names), _clips(split["reference"][:3])
    nothing = lambda samples, rate: (np.zeros(0, np.float32), 16000)
    silence = lambda samples, rate: (np.zeros_like(samples), rate)
    for convert in (nothing, silence):
        m = measure(convert, [texts[n] for n in names], own, reference, tts=engines.synthesizers[0],
                    recognizers={"tiny.en": engines.recognizer}, renders=1)
        assert m.wer("tiny.en", "converted") == 1.0 and m.mean_similarity("converted") == 0.0
        assert m.wer("tiny.en", "own") < 0.3 and m.mean_similarity("own") > 0.7
        lines = "\n".join(report(m, 1, boot=200))
        assert "converted vs own: +" in lines and "95% CI" in lines
