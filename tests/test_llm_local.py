"""The bundled local model answers instead of parroting what it heard, and still streams."""
from __future__ import annotations

import pytest

from adapters.llm_local import EXAMPLE_TURNS, LocalChatModel, bundled_gguf, echoes
from bot.personas import PersonaBook
from core.errors import AnswerCut
from core.types import ChatMessage, LLMOptions


def test_echo_means_repeating_the_input_not_answering_it():
    assert echoes("The conference is now being recorded.", "The conference is now being recorded.")
    assert echoes("Please check the number and dial again.", "Please check the number again.")
    assert echoes("That pin is invalid for this conference.", "The pin is invalid for the conference.")
    assert not echoes("What is the capital of France?", "The capital of France is Paris.")
    assert not echoes("What do bees make?", "Bees make honey.")
    assert not echoes("Hi there", "Hi there")  # too short to tell


def test_example_turns_go_after_the_system_prompt_for_english_only():
    model = LocalChatModel(bundled_gguf())
    books = PersonaBook()
    english = model.prompt([ChatMessage("system", books.get("default").system_prompt), ChatMessage("user", "Hello!")])
    assert [m["role"] for m in english] == ["system"] + ["user", "assistant"] * len(EXAMPLE_TURNS) + ["user"]
    assert english[-1]["content"] == "Hello!"
    chinese = model.prompt([ChatMessage("system", books.get("zh").system_prompt), ChatMessage("user", "你好")])
    assert [m["role"] for m in chinese] == ["system", "user"]


@pytest.mark.slow  # loads and runs the bundled model
@pytest.mark.parametrize("heard", ["The conference is now being recorded.", "That pin is invalid for this conference.",
                                   "The leader has left the conference."])
async def test_statements_it_used_to_parrot_get_an_answer(heard):
    # cool sampling and no example turns: left alone, the model repeats each of these word for word,
    # so what turns it towards a reply here is the echo guard
    model = LocalChatModel(bundled_gguf(), threads=2, seed=0, examples=False)
    system = PersonaBook().get("default").system_prompt
    pieces = []
    try:
        async for piece in model.stream([ChatMessage("system", system), ChatMessage("user", heard)],
                                        LLMOptions(temperature=0.2, max_tokens=40)):
            pieces.append(piece)
    except AnswerCut as exc:  # reaching max_tokens is said at the end of the stream; the pieces stand
        assert exc.at_limit
    answer = "".join(pieces)
    assert answer.strip() and not echoes(heard, answer), answer
    # only the opening is held back to judge it; a longer answer still streams piece by piece
    if len(answer.split()) > len(heard.split()) + 8:
        assert len(pieces) > 3
