"""The base synthesizers speak intelligibly: what they say is heard back by the recognizer."""
from adapters.wer import wer


def synthesizer_for(engines, language):
    return next(s for s in engines.synthesizers if s.supports(language))


async def test_piper_speaks_english(engines):
    audio = await synthesizer_for(engines, "en").synthesize("The weather is lovely today.", "en")
    assert 1.0 < audio.seconds < 5.0
    heard = await engines.recognizer.transcribe(audio, "en")
    assert wer(["the weather is lovely today"], [heard.text]) <= 0.2


async def test_pico_speaks_french_and_spanish_that_are_heard_as_such(engines):
    for language, sentence in (("fr", "Bonjour, je voudrais un café, s'il vous plaît."),
                               ("es", "Buenos días, quisiera un café, por favor.")):
        tts = synthesizer_for(engines, language)
        assert type(tts).__name__ == "PicoSynthesizer"
        audio = await tts.synthesize(sentence, language)
        assert audio.seconds > 1.0
        scores = await engines.recognizer.detect_language(audio)
        assert max(scores, key=scores.get) == language, scores
        heard = await engines.recognizer.transcribe(audio, language)
        assert wer([sentence], [heard.text], language) <= 0.2, heard.text


async def test_markup_in_an_answer_is_spoken_not_obeyed(engines, tmp_path):
    """Pico obeys tags in its input (<genfile> writes the audio to any path): a model's answer must not reach them."""
    target = tmp_path / "written.wav"
    tts = synthesizer_for(engines, "fr")
    audio = await tts.synthesize(f'<genfile file="{target}">Bonjour à tous.</genfile>', "fr")
    assert audio.seconds > 0.5 and not target.exists()


async def test_the_mandarin_voice_is_heard_as_chinese(engines):
    tts = synthesizer_for(engines, "zh")
    assert type(tts).__name__ == "MandarinSynthesizer"
    audio = await tts.synthesize("你好，今天天气很好。", "zh")
    assert audio.seconds > 1.0
    scores = await engines.recognizer.detect_language(audio)
    assert max(scores, key=scores.get) == "zh", scores  # eSpeak NG's Mandarin was heard as Thai
    heard = await engines.recognizer.transcribe(audio, "zh")
    assert "今天天气很好" in heard.text, heard.text


async def test_festival_speaks_russian_that_is_heard_as_russian(engines):
    tts = synthesizer_for(engines, "ru")
    assert type(tts).__name__ == "FestivalSynthesizer"  # eSpeak NG's Russian read back at 164 % WER
    sentence = "Доброе утро, как дела?"
    audio = await tts.synthesize(sentence, "ru")
    assert audio.seconds > 1.0
    scores = await engines.recognizer.detect_language(audio)
    assert max(scores, key=scores.get) == "ru", scores
    heard = await engines.recognizer.transcribe(audio, "ru")
    assert wer([sentence], [heard.text], "ru") <= 0.25, heard.text


def test_no_synthesizer_claims_a_made_up_language_or_one_it_cannot_speak_understandably(engines):
    assert not any(s.supports("xx-madeup") for s in engines.synthesizers)
    # answered in text with a notice instead (tests/test_language_voices.py); bench/language.py --part voices
    assert not any(s.supports(code) for s in engines.synthesizers for code in ("ja", "pt"))
