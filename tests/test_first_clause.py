"""A converted voice's answer starts with its first clause, so its first audio is converted from a shorter piece."""
from __future__ import annotations

import numpy as np
import pytest

from adapters.engines import Engines, build_chat_model
from adapters.settings import Settings
from bot.wiring import build_services
from core.pipeline import ReplyRequest
from core.types import Audio, AudioFrame, ConversationKey, Persona, ReplyDone, SentenceFrame, Voice, VoiceEngine
from tests.fakes.llm_servers import FakeLLMServer, Reply
from tests.test_llm_providers import KEYS, MODELS

ANSWER = ["Well, the folder", " called Work, or maybe", " Archive, is the right place.", " Save it there.", " Then tell me."]


class Tone:
    """A synthesizer that says every piece as a short tone: the test is about what is spoken when, not how."""

    def supports(self, language: str) -> bool:
        return True

    def warm_up(self) -> None:
        pass

    async def synthesize(self, text: str, language: str) -> Audio:
        t = np.arange(int(0.02 * sum(c.isalnum() for c in text) * 16000)) / 16000  # like Piper: no letters, no sound
        return Audio((0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)


class Converted:
    """A voice converter that keeps what it was asked to convert."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    async def convert(self, audio: Audio, voice: Voice) -> Audio:
        self.seconds.append(audio.seconds)
        return audio

    async def preview(self, voice: Voice, text: str) -> Audio:
        raise NotImplementedError("no voice is registered in this test")

    async def close(self) -> None:
        pass


async def _answer(tmp_path, base_url: str, voice: str | None, converter: Converted) -> list:
    settings = Settings(_env_file=None, data_dir=tmp_path / (voice or "plain"), llm_provider="openai", llm_retries=0,
                        llm_model=MODELS["openai"], openai_api_key=KEYS["openai"], openai_base_url=base_url)
    engines = Engines(recognizer=None, chat_model=build_chat_model(settings), synthesizers=[Tone()],
                      converters={VoiceEngine.LITE: converter}, renderer=None)
    services = await build_services(settings, engines=engines)
    try:
        await services.voices.upsert("cloned", VoiceEngine.LITE, ready=True, params={"artifact": "unused"})
        request = ReplyRequest(key=ConversationKey("t:1", "t:1"), persona=Persona("p", "Be brief.", max_sentences=2),
                               text="Where should I save it?", voice=voice)
        return [frame async for frame in services.pipeline.run(request)]
    finally:
        await services.close()
        await engines.close()



@pytest.mark.slow  # loads the TTS and a voice
async def test_a_converted_voice_speaks_its_first_clause_first_and_still_says_whole_sentences(tmp_path):
    async with FakeLLMServer("openai", [Reply(pieces=ANSWER), Reply(pieces=ANSWER)]) as server:
        converter = Converted()
        cloned = await _answer(tmp_path, server.base_url, "cloned", converter)
        plain = await _answer(tmp_path, server.base_url, None, Converted())
    pieces = [f.text for f in cloned if isinstance(f, SentenceFrame)]
    assert pieces == ["Well, the folder called Work,", "or maybe Archive, is the right place.", "Save it there."]
    assert [f.text for f in plain if isinstance(f, SentenceFrame)] == [
        "Well, the folder called Work, or maybe Archive, is the right place.", "Save it there."]
    # the first clause does not count as one of the persona's two sentences, and the answer reads as one text
    assert cloned[-1].text == plain[-1].text == "Well, the folder called Work, or maybe Archive, is the right place. Save it there."
    assert isinstance(cloned[-1], ReplyDone) and len([f for f in cloned if isinstance(f, AudioFrame)]) == 3
    assert len(converter.seconds) == 3 and converter.seconds[0] < converter.seconds[1]


async def test_a_piece_with_nothing_to_say_is_skipped_not_sent_to_the_converter(tmp_path):
    # Piper says nothing for "..." (no samples): that piece is skipped, where it used to fail the whole reply
    async with FakeLLMServer("openai", [Reply(pieces=["Save it in the folder called Work, or in Archive.", " ..."])]) as server:
        converter = Converted()
        frames = await _answer(tmp_path, server.base_url, "cloned", converter)
    assert [f.text for f in frames if isinstance(f, SentenceFrame)][-1] == "..."
    assert isinstance(frames[-1], ReplyDone) and len([f for f in frames if isinstance(f, AudioFrame)]) == 2
    assert len(converter.seconds) == 2
