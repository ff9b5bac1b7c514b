"""The project's one normaliser and error rates (adapters/wer.py): fair to a recognizer, never kind to silence."""
import pytest

from adapters.wer import cer, normalize, sentence_errors, wer


def test_a_number_and_its_words_are_the_same_words():
    assert wer(["press 1 to continue"], ["Press one to continue."]) == 0.0
    assert wer(["press one to continue"], ["press 1 to continue"]) == 0.0
    assert wer(["It is twenty four degrees"], ["it is 24 degrees"]) == 0.0
    assert normalize("Appuyez sur 1", "fr") == normalize("appuyez sur un", "fr")
    assert normalize("Marque el 12.", "es") == "marque el doce"


def test_case_and_punctuation_are_folded():
    assert normalize("Hello, World!  How are   you?") == "hello world how are you"
    assert wer(["Please enter your PIN, then press pound."], ["please enter your pin then press pound"]) == 0.0
    assert normalize("¿Dónde está la estación?", "es") == "dónde está la estación"  # accents change words: kept
    assert wer(["...to reset your volume to the default level..."], ["To reset your volume to the default level."]) == 0.0


def test_substitutions_insertions_and_deletions_are_counted_over_the_whole_corpus():
    assert wer(["a b c d"], ["a x c"]) == 0.5
    assert wer(["a b", "c d e f g h"], ["a b", "c d e f g"]) == pytest.approx(1 / 8)
    assert sentence_errors("the cat sat", "the cat sat down") == (1, 3)


def test_an_empty_hypothesis_scores_100_percent():
    assert wer(["the voice said nothing at all"], [""]) == 1.0
    assert wer(["one sentence heard", "one lost"], ["one sentence heard", ""]) == pytest.approx(2 / 5)


def test_chinese_is_scored_by_characters():
    assert cer(["你好，世界。"], ["你好世界"], "zh") == 0.0
    assert wer(["今天天气很好"], ["今天天气"], "zh") == pytest.approx(2 / 6)
    assert cer(["学习中文要十分钟。"], ["學習中文要10分鐘"], "zh") == 0.0  # numerals and traditional characters


def test_accents_are_folded_only_when_asked():
    assert sentence_errors("codigo de numero", "código de número", "es") == (2, 3)
    assert sentence_errors("codigo de numero", "código de número", "es", accents=False) == (0, 3)


def test_a_reference_with_nothing_to_compare_is_refused():
    with pytest.raises(ValueError, match="nothing left"):
        wer(["?!"], ["hello"])
    with pytest.raises(ValueError):
        wer(["a"], ["a", "b"])


def test_words_split_or_joined_differently_count_once():
    assert sentence_errors("To check voice mail press 1", "To check voicemail, press 1.") == (0, 6)
    assert sentence_errors("uppercase", "Upper case.") == (0, 1)
    assert sentence_errors("m g c p", "MGCP", "fr") == (0, 4)
    assert sentence_errors("To check voice mail press 1", "To check voicemail, press 1.", readings=False) == (2, 6)
    assert sentence_errors("the blue bird", "the bluebird sings") == (1, 3)  # the extra word still counts


def test_a_long_number_may_be_read_digit_by_digit():
    # "1234" is read "one two three four" by the speaker: either reading of the reference is right
    assert sentence_errors("le poste 1234 et 4242", "le poste 1, 2, 3, 4 et 4, 2, 4, 2", "fr") == (0, 14)
    assert sentence_errors("le poste 1234", "le poste mille deux cent trente-quatre", "fr") == (0, 7)
    assert sentence_errors("dial extension 8500", "Dial extension 850-0.") == (0, 3)
    assert sentence_errors("le poste 1234", "le poste 1, 2, 3, 5", "fr")[0] == 1
    assert sentence_errors("le poste 1234 et 4242", "le poste 1, 2, 3, 4 et 4, 2, 4, 2", "fr", readings=False)[0] == 6
