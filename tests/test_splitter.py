import asyncio

from core.splitter import SentenceSplitter, SplitterConfig, split_stream, split_text


def test_western_sentences_abbreviations_and_numbers():
    text = "Hello Mr. Smith. It costs $3.50 today, i.e. cheap! Dr. Who said 2.5 is fine. Ok?"
    # a short last piece is spoken on its own: holding the previous sentence back for it would delay the audio
    assert split_text(text) == ["Hello Mr. Smith.", "It costs $3.50 today, i.e. cheap!", "Dr. Who said 2.5 is fine.", "Ok?"]


def test_chinese_punctuation_without_spaces():
    assert split_text("你好。今天天气很好！我们去公园吧？好的；走吧") == ["你好。今天天气很好！", "我们去公园吧？", "好的；走吧"]


def test_short_fragments_merge_with_the_next_sentence():
    assert split_text("Yes. I think that is a good idea.") == ["Yes. I think that is a good idea."]


def test_closing_quotes_stay_with_their_sentence():
    assert split_text('He said "go home." Then he left the room.') == ['He said "go home."', "Then he left the room."]


def test_long_sentences_are_cut_at_a_soft_break():
    text = "This sentence goes on, " * 20 + "and ends."
    parts = split_text(text, SplitterConfig(max_chars=120))
    assert len(parts) > 1
    assert all(len(p) <= 120 for p in parts)
    assert all(p.endswith(",") for p in parts[:-1])
    assert " ".join(parts).split() == text.split()


def test_a_dot_at_the_end_of_a_piece_waits_for_more_text():
    s = SentenceSplitter()
    assert s.feed("The price is 3.") == []
    assert s.feed("14 dollars today. And") == ["The price is 3.14 dollars today."]
    assert s.flush() == ["And"]


def test_streaming_yields_each_sentence_as_soon_as_it_is_closed():
    seen = []

    async def pieces():
        for token in ["The first one is done", ". Now", " the second one is here", "! End"]:
            yield token
            seen.append(token)

    async def collect():
        out = []
        async for sentence in split_stream(pieces()):
            out.append((sentence, len(seen)))
        return out

    result = asyncio.run(collect())
    # the first sentence came out before the third token was produced
    assert result[0] == ("The first one is done.", 1)
    assert [s for s, _ in result] == ["The first one is done.", "Now the second one is here!", "End"]


def test_a_first_clause_leaves_as_soon_as_its_comma_is_followed_by_more_text():
    splitter = SentenceSplitter(SplitterConfig(first_clause_chars=24))
    assert splitter.feed("Well, the folder called Work,") == []  # "Well," is too short; the comma may be "3,000"
    assert splitter.feed(" or maybe Archive, is the right place. Save it there, please. ") == [
        "Well, the folder called Work,", "or maybe Archive, is the right place.", "Save it there, please."]
    assert splitter.clauses == 1  # only the first piece is ever a clause
    assert split_text("It costs 3,000 dollars, more or less.", SplitterConfig(first_clause_chars=24)) == [
        "It costs 3,000 dollars, more or less."]
