"""The base synthesizers speak intelligibly: what they say is heard back by the recognizer."""
from adapters.wer import wer


def synthesizer_for(engines, language):
    return next(s for s in engines.synthesizers if s.supports(language))


async def test_piper_speaks_english(engines):
    audio = await synthesizer_for(engines, "en").synthesize("The weather is lovely today.", "en")
    assert 1.0 < audio.seconds < 5.0
    heard = await engines.recognizer.transcribe(audio, "en")
    assert wer(["the weather is lovely today"], [heard.text]) <= 0.2


async def test_espeak_speaks_french_and_the_language_is_recognized(engines):
    tts = synthesizer_for(engines, "fr")
    assert type(tts).__name__ == "EspeakSynthesizer"
    audio = await tts.synthesize("Bonjour, je voudrais un café, s'il vous plaît.", "fr")
    assert audio.seconds > 1.0
    heard = await engines.recognizer.transcribe(audio, None)
    assert heard.language == "fr"


async def test_espeak_speaks_chinese(engines):
    audio = await synthesizer_for(engines, "zh").synthesize("你好，今天天气很好。", "zh")
    assert audio.seconds > 1.0
    assert float(abs(audio.samples).max()) > 0.05


def test_no_synthesizer_claims_a_made_up_language(engines):
    assert not any(s.supports("xx-madeup") for s in engines.synthesizers)
