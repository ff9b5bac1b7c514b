from core.speakable import spoken_form


def test_markdown_links_and_emoji_are_not_spoken():
    assert spoken_form("**Sure!** Try `ls -la` now 😀.") == "Sure! Try ls -la now."
    assert spoken_form("# Plan") == "Plan"
    assert spoken_form("- buy *fresh* bread") == "buy fresh bread"
    assert spoken_form("See https://www.example.org/docs?id=3 for more.") == "See example.org for more."
    assert spoken_form("Open my_notes.txt") == "Open my notes.txt"
    assert spoken_form("Call ticket #4761 (urgent) [today].") == "Call ticket number 4761 urgent today."


def test_ordinary_sentences_are_left_as_written():
    for text in ("It costs $3.50 today, i.e. cheap!", "2 * 3 = 6", "你好，今天天气很好！",
                 "Don't panic: 42 is fine."):
        assert spoken_form(text) == text


def test_nothing_speakable_keeps_the_original():
    assert spoken_form("👍") == "👍"
    assert spoken_form("***") == "***"
