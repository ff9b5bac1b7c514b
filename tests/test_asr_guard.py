"""Short real clips: Whisper must not make up a sentence for a word, nor be trusted when it made text up, and a
clip always reads the same."""
from adapters.asr_whisper import Decoding, letters_limit
from adapters.media import decode_audio
from core.pipeline import PipelineConfig
from tests.speech import speech_clip


def heard(engines, language: str, clip: str):
    audio = decode_audio(speech_clip(language, clip).read_bytes())
    return audio, engines.recognizer.transcribe_sync(audio, language)


def test_a_half_second_word_is_not_heard_as_a_sentence_said_six_times(engines):
    # "de", 0.47 s: beam 5 with the French prompt wrote "Je vous invite vous à l'écran, ..." six times (42 words)
    audio, transcript = heard(engines, "fr", "vm-from")
    letters = sum(c.isalnum() for c in transcript.text)
    assert letters <= letters_limit(audio.seconds), transcript.text
    assert len(transcript.text.split()) <= 6, transcript.text


def test_a_one_second_word_does_not_come_back_as_the_prompts_own_sentence(engines):
    # "Majuscule", 1.1 s: from the prompt "Bonjour, voici un message en français." it came back as
    # "J'ai eu le message en français."
    _, transcript = heard(engines, "fr", "uppercase")
    assert "message" not in transcript.text.lower(), transcript.text


def test_the_same_clip_gives_the_same_transcript_every_time(engines):
    # "uppercase" goes through the second attempt: the fallback is as repeatable as the first decode
    texts = {heard(engines, "fr", "uppercase")[1].text for _ in range(2)}
    assert len(texts) == 1, texts


def test_a_failed_decode_is_tried_again_without_the_prompt_then_with_the_other_search():
    assert Decoding(beam_size=5, prompt=True).attempts() == (
        Decoding(beam_size=5, prompt=True), Decoding(beam_size=5), Decoding(beam_size=1))
    assert Decoding().attempts() == (Decoding(), Decoding(beam_size=5))
    assert Decoding(beam_size=5, guard=False).attempts() == (Decoding(beam_size=5, guard=False),)


def test_french_that_the_english_model_loops_on_is_not_trusted(engines):
    # tiny.en wrote "In this case, we are going to have an example of an example of ..." at confidence 0.68, which
    # would have skipped the check that sends a clip in another language to the multilingual model
    audio = decode_audio(speech_clip("fr", "demo-abouttotry").read_bytes())
    transcript = engines.recognizer.transcribe_sync(audio, "en")
    assert transcript.confidence < PipelineConfig().recheck_confidence, (transcript.confidence, transcript.text)
