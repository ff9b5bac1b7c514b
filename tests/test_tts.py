"""The base synthesizers speak intelligibly: what they say is heard back by the recognizer."""
from adapters.wer import wer


def synthesizer_for(engines, language):
    return next(s for s in engines.synthesizers if s.supports(language))


async def test_piper_speaks_english(engines):
    audio = await synthesizer_for(engines, "en").synthesize("The weather is lovely today.", "en")
    assert 1.0 < audio.seconds < 5.0
    heard = await engines.recognizer.transcribe(audio, "en")
    assert wer(["the weather is lovely today"], [heard.text]) <= 0.2


async def test_kokoro_speaks_french_that_is_heard_as_french(engines):
    tts = synthesizer_for(engines, "fr")
    assert type(tts).__name__ == "KokoroSynthesizer"
    audio = await tts.synthesize("Bonjour, je voudrais un café, s'il vous plaît.", "fr")
    assert audio.seconds > 1.0
    heard = await engines.recognizer.transcribe(audio, "fr")
    assert wer(["bonjour je voudrais un café s'il vous plaît"], [heard.text]) <= 0.2, heard.text
    # its Japanese voice's accent sometimes sounds Portuguese to Whisper's detector (this sentence does)
    scores = await engines.recognizer.detect_language(audio)
    assert "fr" in sorted(scores, key=scores.get)[-2:], scores


async def test_the_mandarin_voice_is_heard_as_chinese(engines):
    tts = synthesizer_for(engines, "zh")
    assert type(tts).__name__ == "MandarinSynthesizer"
    audio = await tts.synthesize("你好，今天天气很好。", "zh")
    assert audio.seconds > 1.0
    scores = await engines.recognizer.detect_language(audio)
    assert max(scores, key=scores.get) == "zh", scores  # eSpeak NG's Mandarin was heard as Thai
    heard = await engines.recognizer.transcribe(audio, "zh")
    assert "今天天气很好" in heard.text, heard.text


async def test_espeak_speaks_the_other_languages(engines):
    tts = synthesizer_for(engines, "de")
    assert type(tts).__name__ == "EspeakSynthesizer"
    audio = await tts.synthesize("Guten Morgen, wie geht es dir?", "de")
    assert audio.seconds > 1.0 and float(abs(audio.samples).max()) > 0.05


def test_no_synthesizer_claims_a_made_up_language(engines):
    assert not any(s.supports("xx-madeup") for s in engines.synthesizers)
