"""Answers that end badly: cut off by the provider, empty, over the context window, or outliving their timeout."""
from __future__ import annotations

import asyncio
import threading
import time

import pytest

from adapters.engines import Engines, build_chat_model
from adapters.llm_local import LocalChatModel, bundled_gguf
from adapters.llm_resilience import ResilientChatModel, RetryPolicy
from adapters.settings import Settings
from bot.wiring import build_services
from core.errors import AnswerCut, ProviderError
from core.languages import plan_answer
from core.pipeline import ReplyRequest
from core.tokens import MESSAGE_OVERHEAD, token_bound
from core.types import ChatMessage, ConversationKey, LLMOptions, Persona, ReplyDone, SentenceFrame
from tests.fakes.llm_servers import FakeLLMServer, Reply
from tests.test_llm_providers import KEYS, MODELS

PERSONA = Persona("plain", "You answer briefly.", max_sentences=3, max_tokens=60)
KEY = ConversationKey("tg:5", "tg:5")


async def _services(tmp_path, dialect: str, base_url: str, **extra):
    settings = Settings(_env_file=None, data_dir=tmp_path / "var", llm_provider=dialect, llm_model=MODELS[dialect],
                        llm_retries=0, **{f"{dialect}_base_url": base_url, f"{dialect}_api_key": KEYS[dialect]}, **extra)
    engines = Engines(recognizer=None, chat_model=build_chat_model(settings), synthesizers=[], converters={}, renderer=None)
    return await build_services(settings, engines=engines), engines


async def _reply(services) -> list:
    request = ReplyRequest(key=KEY, persona=PERSONA, text="Tell me about the sea.", speak=False)
    return [frame async for frame in services.pipeline.run(request)]


@pytest.mark.parametrize("dialect", ["openai", "zhipu", "gemini"])
async def test_an_answer_cut_off_by_the_provider_is_neither_finished_nor_stored(tmp_path, dialect):
    pieces = ["The sea is wide.", " It covers most", " of the planet."]
    async with FakeLLMServer(dialect, [Reply(pieces=pieces, cut_after=2)]) as server:
        services, engines = await _services(tmp_path, dialect, server.base_url)
        try:
            with pytest.raises(AnswerCut):
                await _reply(services)
            assert await services.history.count(KEY) == 0
        finally:
            await services.close()
            await engines.close()


async def test_an_answer_stopped_at_its_token_limit_keeps_only_whole_sentences(tmp_path):
    pieces = ["The sea is wide.", " It covers most", " of the"]
    async with FakeLLMServer("openai", [Reply(pieces=pieces, finish_reason="length")]) as server:
        services, engines = await _services(tmp_path, "openai", server.base_url)
        try:
            frames = await _reply(services)
            done = [f for f in frames if isinstance(f, ReplyDone)]
            assert [f.text for f in frames if isinstance(f, SentenceFrame)] == ["The sea is wide."]
            assert done and done[0].text == "The sea is wide."
            assert await services.history.count(KEY) == 2
        finally:
            await services.close()
            await engines.close()


async def test_an_empty_answer_falls_back_along_the_chain(tmp_path):
    # Gemini 2.5 spending its whole output budget on thought: MAX_TOKENS and no text
    async with FakeLLMServer("gemini", [Reply(pieces=[], finish_reason="MAX_TOKENS")]) as gemini, \
            FakeLLMServer("openai", [Reply(pieces=["Waves", " are wind on water."])]) as openai:
        services, engines = await _services(tmp_path, "gemini", gemini.base_url, llm_fallback=["openai:gpt-test-mini"],
                                            openai_base_url=openai.base_url, openai_api_key=KEYS["openai"])
        try:
            frames = await _reply(services)
            assert frames[-1].text == "Waves are wind on water."
            assert len(gemini.requests) == 1 and len(openai.requests) == 1
        finally:
            await services.close()
            await engines.close()
    # Flash is asked not to think, so the answer gets the whole budget
    assert gemini.requests[0].body["generationConfig"]["thinkingConfig"] == {"thinking_budget": 0}


@pytest.fixture(scope="module")
def local_model():
    model = LocalChatModel(bundled_gguf(), threads=2)
    model.warm_up()
    return model


@pytest.mark.parametrize("text", ["你好，今天天气怎么样？我想去海边散步，你觉得呢？", "🎉😀🌊🐟🦀🌞" * 4,
                                  "Hello there, how are you today? I walked 12.5 km by the river.",
                                  "Zürich, Kraków and Ærøskøbing: naïve café façades."])
def test_the_token_bound_is_never_below_the_models_own_count(local_model, text):
    real = len(local_model._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))
    assert token_bound(text) >= real, (token_bound(text), real)


async def test_a_chinese_conversation_stays_inside_the_local_models_context(tmp_path, local_model):
    settings = Settings(_env_file=None, data_dir=tmp_path / "var", history_token_budget=100_000)
    engines = Engines(recognizer=None, chat_model=ResilientChatModel([local_model]), synthesizers=[], converters={}, renderer=None)
    services = await build_services(settings, engines=engines)
    try:
        persona = services.personas.get("zh")
        for turn in range(40):
            await services.history.append_exchange(KEY, f"第{turn}个问题：你喜欢大海吗？为什么？😀", "我很喜欢大海，因为它又大又美，海风很舒服。🌊")
        question = "那你喜欢山吗？"
        messages = await services.pipeline._messages(ReplyRequest(key=KEY, persona=persona, text=question), question,
                                                      plan_answer("zh", persona, None))
        assert len(messages) > 4  # some history is kept
        prompt = local_model.prompt(messages)
        used = sum(len(local_model._llm.tokenize(m["content"].encode("utf-8"), add_bos=False, special=False))
                   + MESSAGE_OVERHEAD for m in prompt)
        assert used + persona.max_tokens <= local_model.context, used
    finally:
        await services.close()


class _Spy:
    """Counts what llama.cpp itself generates, under the model adapter."""

    def __init__(self, model: LocalChatModel) -> None:
        self.calls = 0
        self.tokens: list[float] = []
        llm = model._llm
        original = llm.create_chat_completion

        def counted(*args, **kwargs):
            self.calls += 1
            for chunk in original(*args, **kwargs):
                self.tokens.append(time.monotonic())
                yield chunk

        llm.create_chat_completion = counted
        self._undo = lambda: setattr(llm, "create_chat_completion", original)

    def __enter__(self) -> "_Spy":
        return self

    def __exit__(self, *exc) -> None:
        self._undo()


async def test_a_timed_out_local_generation_stops_and_its_retries_do_not_pile_up(local_model):
    # a long question: the echo guard holds the opening back, so the caller hears nothing for a while
    question = " ".join(["Please tell me everything you know about the sea, the waves, the tides and the fish"] * 2)
    messages = [ChatMessage("system", "You answer at length."), ChatMessage("user", question)]
    model = ResilientChatModel([local_model], RetryPolicy(retries=0, timeout=0.05))
    lock: threading.Lock = local_model._lock
    with _Spy(local_model) as spy:
        with pytest.raises(ProviderError):
            async for _ in model.stream(messages, LLMOptions(max_tokens=400)):
                pass
        # reading the prompt cannot be interrupted; after it, the run must end at the first token
        deadline = time.monotonic() + 60
        while lock.locked() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert spy.calls == 1 and not lock.locked()
        assert len(spy.tokens) <= 3, f"{len(spy.tokens)} tokens written for a caller that had given up"

        # while the model is busy (its lock held), three replies time out twice each: none of those six runs may
        # start later, when the lock comes free
        retrying = ResilientChatModel([local_model], RetryPolicy(retries=1, timeout=0.2, base_delay=0.01))
        lock.acquire()
        try:
            async def ask():
                with pytest.raises(ProviderError):
                    async for _ in retrying.stream(messages, LLMOptions(max_tokens=50)):
                        pass

            await asyncio.gather(ask(), ask(), ask())
        finally:
            lock.release()
        await asyncio.sleep(2.0)
        assert spy.calls == 1, f"{spy.calls - 1} abandoned runs went on to generate"
        assert lock.acquire(timeout=1.0)
        lock.release()


async def test_a_whole_sentence_at_the_token_limit_stands_and_a_lone_fragment_is_marked(tmp_path):
    async with FakeLLMServer("openai", [Reply(pieces=["The sea is wide."], finish_reason="length"),
                                        Reply(pieces=["The sea is", " wide and"], finish_reason="length")]) as server:
        services, engines = await _services(tmp_path, "openai", server.base_url)
        try:
            assert (await _reply(services))[-1].text == "The sea is wide."
            assert (await _reply(services))[-1].text == "The sea is wide and\u2026"
        finally:
            await services.close()
            await engines.close()
