"""The default speech recognizer on real recorded speech."""
from adapters.media import decode_audio
from adapters.wer import wer
from tests.speech import speech_clips


def test_default_asr_word_error_rate_on_20_real_clips(engines):
    clips = speech_clips("en", min_seconds=2.0)
    picked = clips[:: len(clips) // 20][:20]
    assert len(picked) == 20
    refs, hyps = [], []
    for path, _, text in picked:
        transcript = engines.recognizer.transcribe_sync(decode_audio(path.read_bytes()), "en")
        refs.append(text)
        hyps.append(transcript.text)
    rate = wer(refs, hyps)
    print(f"WER over 20 clips: {rate:.3f}")
    assert rate <= 0.15


def test_language_is_detected_with_the_multilingual_model(engines):
    path, _, _ = speech_clips("es", min_seconds=3.0)[0]
    transcript = engines.recognizer.transcribe_sync(decode_audio(path.read_bytes()), None)
    assert transcript.language == "es"
    assert len(transcript.text.split()) >= 2


def test_wer_counts_substitutions_insertions_and_deletions():
    assert wer(["press one to continue"], ["Press 1 to continue."]) == 0.0
    assert wer(["a b c d"], ["a x c"]) == 0.5
