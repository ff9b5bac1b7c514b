"""The reply pipeline speaks the first sentence while the provider is still writing the rest."""
from __future__ import annotations

import asyncio

import pytest

from adapters.engines import Engines, build_chat_model, build_synthesizers
from adapters.settings import Settings
from bot.wiring import build_services
from core.pipeline import ReplyRequest
from core.types import AudioFrame, ConversationKey, ReplyDone, SentenceFrame
from tests.fakes.llm_servers import FakeLLMServer, Reply
from tests.test_llm_providers import KEYS, MODELS

ANSWER = ["The weather", " is mild today.", " Take a", " light jacket", " if you go out", " tonight."]


@pytest.fixture(scope="module")
def piper(tmp_path_factory):
    return build_synthesizers(Settings(_env_file=None, data_dir=tmp_path_factory.mktemp("tts")))


@pytest.mark.parametrize("dialect", ["openai", "zhipu", "gemini"])
async def test_first_sentence_is_spoken_before_the_model_finishes(tmp_path, piper, dialect):
    release = asyncio.Event()
    # the server writes the first sentence and the next word (the splitter needs it to see the sentence end),
    # then waits until the test has heard the sentence
    async with FakeLLMServer(dialect, [Reply(pieces=ANSWER, hold_after=3, release=release)]) as server:
        settings = Settings(_env_file=None, data_dir=tmp_path / "var", llm_provider=dialect, llm_model=MODELS[dialect],
                            **{f"{dialect}_base_url": server.base_url, f"{dialect}_api_key": KEYS[dialect]})
        engines = Engines(recognizer=None, chat_model=build_chat_model(settings), synthesizers=piper, converters={}, renderer=None)
        services = await build_services(settings, engines=engines)
        try:
            persona = services.personas.get("default")
            key = ConversationKey("tg:7", "tg:7")
            frames = []
            sent_at_first_audio = None

            async def run() -> None:
                nonlocal sent_at_first_audio
                async for frame in services.pipeline.run(ReplyRequest(key=key, persona=persona, text="Do I need a coat?")):
                    frames.append(frame)
                    if isinstance(frame, AudioFrame) and sent_at_first_audio is None:
                        sent_at_first_audio = (server.pieces_sent, server.finished_streams)
                        release.set()

            await asyncio.wait_for(run(), 30)
            history = await services.history.load(key, 10_000)
        finally:
            release.set()  # never leave the server's handler waiting
            await services.close()
            await engines.close()

    assert sent_at_first_audio == (3, 0), "the first sentence should be spoken while the model is still writing"
    first = next(f for f in frames if isinstance(f, AudioFrame))
    assert first.text == "The weather is mild today." and first.audio.seconds > 0.5
    sentences = [f.text for f in frames if isinstance(f, SentenceFrame)]
    assert sentences == ["The weather is mild today.", "Take a light jacket if you go out tonight."]
    done = frames[-1]
    assert isinstance(done, ReplyDone) and done.text == "".join(ANSWER)
    assert [m.content for m in history] == ["Do I need a coat?", "".join(ANSWER)]
    # the request carried the persona's system prompt and the user's words
    body = server.requests[0].body
    wire = str(body)
    assert "Do I need a coat?" in wire and "friendly person" in wire


class _Heard:
    """The real Piper behind the synthesizer port, noting each text it is asked to speak."""

    def __init__(self, inner) -> None:
        self.inner, self.texts = inner, []

    def supports(self, language: str) -> bool:
        return self.inner.supports(language)

    def warm_up(self) -> None:
        self.inner.warm_up()

    async def synthesize(self, text: str, language: str = "en"):
        self.texts.append(text)
        return await self.inner.synthesize(text, language)


async def test_markdown_is_written_but_not_spoken(tmp_path, piper):
    written = "**Sure!** The guide is at https://example.org/guide?x=1 😀. Ask for ticket #42."
    async with FakeLLMServer("openai", [Reply(pieces=[written])]) as server:
        settings = Settings(_env_file=None, data_dir=tmp_path / "var", llm_provider="openai", llm_model=MODELS["openai"],
                            openai_base_url=server.base_url, openai_api_key=KEYS["openai"])
        heard = _Heard(piper[0])
        engines = Engines(recognizer=None, chat_model=build_chat_model(settings), synthesizers=[heard], converters={}, renderer=None)
        services = await build_services(settings, engines=engines)
        try:
            request = ReplyRequest(key=ConversationKey("tg:8", "tg:8"), persona=services.personas.get("default"), text="Where?")
            frames = [f async for f in services.pipeline.run(request)]
        finally:
            await services.close()
            await engines.close()
    assert heard.texts == ["Sure! The guide is at example.org.", "Ask for ticket number 42."]
    assert all(f.audio.seconds > 0.3 for f in frames if isinstance(f, AudioFrame))
    assert frames[-1].text == written  # the text reply and the history keep what the model wrote
