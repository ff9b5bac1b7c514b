"""The face a sentence at a time (issue 28): a page that plays the voice as it comes gets each sentence's talking
head while the next sentence is still being written, not one video after the whole answer."""
from __future__ import annotations

import asyncio

import pytest

from adapters.video import read_info
from adapters.settings import Settings
from adapters.engines import Engines, build_chat_model, build_synthesizers
from bot.wiring import build_services
from core.pipeline import ReplyRequest
from core.types import AudioFrame, ConversationKey, ReplyDone, SpeechDone, VideoFrame, VideoPartFrame
from tests.fakes.llm_servers import FakeLLMServer, Reply
from tests.test_llm_providers import KEYS, MODELS
from tests.web_harness import LevelMeterAvatar

ANSWER = ["The weather", " is mild today.", " Take a", " light jacket", " if you go out", " tonight."]


@pytest.fixture(scope="module")
def piper(tmp_path_factory):
    return build_synthesizers(Settings(_env_file=None, data_dir=tmp_path_factory.mktemp("tts")))


@pytest.mark.parametrize("parts", [True, False])
async def test_the_first_sentence_has_its_face_before_the_model_writes_the_second(tmp_path, piper, parts):
    release = asyncio.Event()
    # the model writes the first sentence and one word, then waits until the test lets it go on
    async with FakeLLMServer("openai", [Reply(pieces=ANSWER, hold_after=3, release=release)]) as server:
        settings = Settings(_env_file=None, data_dir=tmp_path / "var", llm_provider="openai", llm_model=MODELS["openai"],
                            openai_base_url=server.base_url, openai_api_key=KEYS["openai"])
        engines = Engines(recognizer=None, chat_model=build_chat_model(settings), synthesizers=piper, converters={},
                          renderer=LevelMeterAvatar())
        services = await build_services(settings, engines=engines)
        frames: list = []
        held_when_face_came = None
        try:
            request = ReplyRequest(key=ConversationKey("web:1", "web:1"), persona=services.personas.get("default"),
                                   text="Do I need a coat?", avatar="meter", video_parts=parts)

            async def run() -> None:
                nonlocal held_when_face_came
                async for frame in services.pipeline.run(request):
                    frames.append(frame)
                    if isinstance(frame, VideoPartFrame) and held_when_face_came is None:
                        held_when_face_came = server.finished_streams == 0
                        release.set()
                    if isinstance(frame, AudioFrame) and not parts:
                        release.set()

            await asyncio.wait_for(run(), 60)
        finally:
            release.set()
            await services.close()
            await engines.close()

    audio = [f for f in frames if isinstance(f, AudioFrame)]
    faces = [f for f in frames if isinstance(f, VideoPartFrame)]
    whole = [f for f in frames if isinstance(f, VideoFrame)]
    assert isinstance(frames[-1], ReplyDone) and len(audio) == 2
    if not parts:  # the other channels: one video of the whole answer, after the speech
        assert not faces and len(whole) == 1 and frames.index(whole[0]) > max(frames.index(a) for a in audio)
        return
    assert held_when_face_came is True, "the first face should come while the model is still writing"
    assert not whole and sorted({f.index for f in faces}) == [a.index for a in audio]
    # the answer's first second is a part of its own, so the face starts as soon as one second is drawn
    assert faces[0].index == 0 and faces[0].offset == 0 and abs(faces[0].seconds - 1.0) < 1e-6 < audio[0].audio.seconds - 1.5
    for a in audio:
        pieces = [f for f in faces if f.index == a.index]
        assert frames.index(a) < frames.index(pieces[0])  # a face never holds its own voice back
        assert [p.offset for p in pieces] == [0.0] + [sum(p.seconds for p in pieces[:i]) for i in range(1, len(pieces))]
        assert abs(sum(p.seconds for p in pieces) - a.audio.seconds) < 1e-6
        for p in pieces:
            assert abs(read_info(p.mp4).seconds - p.seconds) < 0.15
    # the first face came before the second sentence's voice; the voice is never held for a face
    assert frames.index(faces[0]) < frames.index(audio[1])
    between = frames[frames.index(audio[-1]) + 1:frames.index(next(f for f in frames if isinstance(f, SpeechDone)))]
    assert all(isinstance(f, VideoPartFrame) for f in between)  # only faces already drawn, never a wait for one


class _FirstFails(LevelMeterAvatar):
    """The level meter, except that drawing the first part fails as an engine does."""

    def __init__(self) -> None:
        self.calls = 0

    async def render(self, audio, avatar: str, text: str = "") -> bytes:
        self.calls += 1
        if self.calls == 1:
            from core.errors import EngineError

            raise EngineError("the face could not be drawn")
        return await super().render(audio, avatar, text)


async def test_a_face_that_fails_costs_its_part_not_the_voice(tmp_path, piper):
    async with FakeLLMServer("openai", [Reply(pieces=ANSWER)]) as server:
        settings = Settings(_env_file=None, data_dir=tmp_path / "var", llm_provider="openai", llm_model=MODELS["openai"],
                            openai_base_url=server.base_url, openai_api_key=KEYS["openai"])
        engines = Engines(recognizer=None, chat_model=build_chat_model(settings), synthesizers=piper, converters={},
                          renderer=_FirstFails())
        services = await build_services(settings, engines=engines)
        try:
            request = ReplyRequest(key=ConversationKey("web:2", "web:2"), persona=services.personas.get("default"),
                                   text="Do I need a coat?", avatar="meter", video_parts=True)
            frames = [f async for f in services.pipeline.run(request)]
        finally:
            await services.close()
            await engines.close()
    assert isinstance(frames[-1], ReplyDone)
    assert len([f for f in frames if isinstance(f, AudioFrame)]) == 2
    faces = [f for f in frames if isinstance(f, VideoPartFrame)]
    assert faces and faces[0].offset > 0  # the first second's part failed; the rest of the faces came
