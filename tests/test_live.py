"""Live talk over WebRTC: a scripted aiortc client speaks real clips to the real server and hears the answer."""
from __future__ import annotations

import asyncio
import re
import time
from contextlib import asynccontextmanager

import numpy as np
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from adapters.asr_whisper import speech_only
from adapters.engines import Engines, build_chat_model
from adapters.media import decode_audio, encode_wav, resample
from adapters.settings import Settings
from bot.wiring import build_services
from core.heard import CUT_MARK, heard_answer, heard_part
from core.types import Audio, ConversationKey
from tests.fakes.llm_servers import FakeLLMServer, Reply
from tests.live_client import LiveClient
from tests.speech import speech_clips
from tests.test_llm_providers import KEYS
from tests.web_harness import chromium, in_thread, live_server

LONG_ANSWER = ["The harbour opens at seven every morning and the first boats leave soon after that.",
               " Most of the fishermen come back before noon with whatever the sea has given them.",
               " In the afternoon the market by the water sells the catch to anyone who walks by."]


def clip(name: str) -> tuple[Audio, str]:
    """A shared clip, cut to its speech: it starts and ends with words, so timings are from speech itself."""
    path, _, truth = next(c for c in speech_clips("en") if c[0].stem == name)
    audio = decode_audio(path.read_bytes())
    return Audio(speech_only(audio.samples, pad_s=0.05), audio.sample_rate), truth


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z']+", text.lower()))


def test_an_answer_cut_mid_sentence_keeps_the_words_heard():
    sentences = ["The sea is wide.", "It is deep and very cold."]
    assert heard_answer(sentences, [1.0, 1.0]) == "The sea is wide. It is deep and very cold."
    assert heard_answer(sentences, [1.0, 0.5]) == "The sea is wide. It is deep" + CUT_MARK
    assert heard_answer(sentences, [0.3, 0.0]) == "The" + CUT_MARK
    assert heard_part("Hello there.", 0.01) == ""
    assert heard_answer(sentences, []) == ""


class AnswersByQuestion(FakeLLMServer):
    """The long answer, except to a question about a pin: answers begun at a pause and dropped may have asked too."""

    def _next_reply(self) -> Reply:
        question = self.requests[-1].body["messages"][-1]["content"]
        return Reply(pieces=["Sure, ask me anything."]) if "pin" in question.lower() else Reply(pieces=LONG_ANSWER)


@pytest.fixture
async def fake_llm():
    async with AnswersByQuestion("openai") as llm:
        yield llm


@asynccontextmanager
async def live_site(tmp_path, engines, fake_llm, **settings_extra):
    """The web server with live talk, answering through the fake LLM; `settings_extra` sets the rest."""
    settings = Settings(_env_file=None, data_dir=tmp_path / "var", web_secret="live-test-secret", llm_provider="openai",
                        llm_model="gpt-test-mini", openai_base_url=fake_llm.base_url, openai_api_key=KEYS["openai"],
                        llm_retries=0, language="en", **settings_extra)
    mine = Engines(recognizer=engines.recognizer, chat_model=build_chat_model(settings),
                   synthesizers=engines.synthesizers, converters={}, renderer=None)
    services = await build_services(settings, engines=mine)  # the real avatar studio: photo avatars talk live
    try:
        async with live_server(services) as server:
            yield server
    finally:
        await services.close()
        await mine.close()


@pytest.fixture
async def site(tmp_path, engines, fake_llm):
    async with live_site(tmp_path, engines, fake_llm, live_max_sessions=1) as server:
        yield server


async def wait_for(check, timeout: float) -> float:
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < timeout, "timed out"
        await asyncio.sleep(0.05)
    return time.monotonic() - start


@pytest.mark.slow
async def test_a_spoken_question_is_answered_and_an_interruption_cuts_the_answer(site):
    live = site.app.state.live
    question, truth = clip("cannot-complete-as-dialed")
    more, more_truth = clip("agent-pass")
    interruption, second_truth = clip("conf-getpin")
    client = LiveClient(site.url)
    try:
        await client.connect()
        # a pause shorter than the end-of-utterance timeout, though long enough to start an answer: one question
        client.say(question)
        client.say(Audio.silence(0.3, question.sample_rate))
        said = client.say(more)
        await said.done.wait()
        final = await client.event("transcript", timeout=30)
        assert len(words(final["text"]) & words(truth)) >= len(words(truth)) // 2, (final, truth)
        assert len(words(final["text"]) & words(more_truth)) >= len(words(more_truth)) // 2, (final, more_truth)
        assert client.said_events("partial"), "no partial transcript while the person spoke"
        first_sound = await client.first_sound(after=said.ended, timeout=30)
        assert len(client.said_events("transcript")) == 1

        # a second visitor while the one session allowed is running is told so, and nothing starts
        other = LiveClient(site.url)
        try:
            refused = await other.connect(expect_status=503)
            assert refused["code"] == "live_full" and "try again" in refused["message"]
        finally:
            await other.close()
        assert live.sessions.count == 1

        # the person speaks while the first sentence is still being said: the answer stops and is cut there
        await asyncio.sleep(max(0.0, first_sound + 1.5 - time.monotonic()))
        cut_in = client.say(interruption)
        interrupted = await client.event("interrupted", timeout=10)
        stopped = await client.quiet_from(cut_in.started, hold=1.0, timeout=10)
        assert stopped - cut_in.started < 1.0, f"the answer went on for {stopped - cut_in.started:.2f} s"
        whole = "".join(LONG_ANSWER).strip()
        heard = interrupted["heard"]
        assert heard and heard.endswith(CUT_MARK) and len(heard) < len(LONG_ANSWER[0]), heard
        assert whole.startswith(heard[:-1]), heard

        # the interruption itself is answered, and the history holds what was heard, then the second exchange
        await client.event("done", after=cut_in.started, timeout=30)
        user = live.sessions.all()[0].user
        history = site.services.history

        async def exchanges():
            return await history.load(ConversationKey(user, user), 10_000)
        await wait_for(lambda: not live.sessions.all()[0].voice.busy and client.said_events("listening"), 30)
        for _ in range(50):
            stored = await exchanges()
            if len(stored) == 4:
                break
            await asyncio.sleep(0.1)
        assert [m.role for m in stored] == ["user", "assistant", "user", "assistant"], stored
        assert stored[1].content == heard
        assert stored[0].content == final["text"]
        assert len(words(stored[2].content) & words(second_truth)) >= 2, (stored[2].content, second_truth)
        assert stored[3].content == "Sure, ask me anything."
    finally:
        await client.close()
    # the closed client's session is freed within 5 s, and a new visitor gets in again
    freed = await wait_for(lambda: live.sessions.count == 0, 5.0)
    assert freed < 5.0
    assert site.services.settings.live_max_sessions == 1


@pytest.mark.slow
async def test_the_live_page_in_a_browser_hears_a_question_answers_it_and_frees_a_closed_tab(site, tmp_path):
    # one sentence: a clip with a pause as long as the end-of-utterance timeout may fairly be taken as two turns
    question, truth = clip("queue-youarenext")
    # the fake microphone: the question once, then silence for longer than the test runs (the file loops)
    mic = tmp_path / "question.wav"
    pause = Audio(np.zeros(48_000 * 40, dtype=np.float32), 48_000)
    mic.write_bytes(encode_wav(Audio(np.concatenate([np.zeros(24_000, np.float32), resample(question, 48_000).samples,
                                                     pause.samples]), 48_000)))
    driver = chromium(tmp_path / "profile", "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                      f"--use-file-for-fake-audio-capture={mic}")
    live = site.app.state.live
    try:
        def talk() -> tuple[list[str], str, str, float]:
            driver.get(f"{site.url}/")
            chat_tab = driver.current_window_handle
            driver.switch_to.new_window("tab")
            driver.get(f"{site.url}/live")
            wait = WebDriverWait(driver, 60, poll_frequency=0.1)
            wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1")
            driver.find_element(By.ID, "start").click()
            partials = []

            def final_or_partial(d):
                for b in d.find_elements(By.CSS_SELECTOR, ".bubble.user"):
                    text = b.text.strip()
                    if "partial" in b.get_attribute("class") and text and text not in partials:
                        partials.append(text)
                    if "final" in b.get_attribute("class"):
                        shown = int(b.get_attribute("data-partials") or 0)
                        partials.extend(["(partial)"] * (shown - len(partials)))
                        return text
                return None
            final = wait.until(final_or_partial)
            answer = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, ".bubble.bot .sentence").text.strip())
            stage = driver.find_element(By.ID, "stage")
            peak = wait.until(lambda d: float(stage.get_attribute("data-answer-peak") or 0) > 0.02
                              and float(stage.get_attribute("data-answer-peak")))
            driver.close()  # the live tab; the chat tab stays open
            driver.switch_to.window(chat_tab)
            return partials, final, answer, peak

        partials, final, answer, peak = await in_thread(talk)
        closed_at = time.monotonic()
        assert live.sessions.count == 1  # the closed tab's session, until the server notices
        assert partials, "no partial transcript was shown while the question was spoken"
        assert len(words(final) & words(truth)) >= len(words(truth)) // 2, (final, truth)
        assert answer == LONG_ANSWER[0].strip()
        assert peak > 0.02
        await wait_for(lambda: live.sessions.count == 0, 5.0)
        assert time.monotonic() - closed_at < 5.0
    finally:
        await in_thread(driver.quit)


@pytest.fixture
async def site_with_a_face(tmp_path, engines, fake_llm):
    async with live_site(tmp_path, engines, fake_llm, avatar="astro", avatar_live_size=128) as server:
        yield server


@pytest.mark.slow
async def test_with_an_avatar_the_answer_comes_with_a_talking_face(site_with_a_face):
    import io

    from PIL import Image

    from bot.common.avatars import add_photo_avatar
    from geneface.testclip import portrait

    buf = io.BytesIO()
    Image.fromarray(portrait(256)[0]).save(buf, format="PNG")
    await add_photo_avatar(site_with_a_face.services, "astro", buf.getvalue())
    question, _ = clip("agent-pass")
    client = LiveClient(site_with_a_face.url, video=True)
    try:
        await client.connect()
        said = client.say(question)
        await said.done.wait()
        first_sound = await client.first_sound(after=said.ended, timeout=30)
        await asyncio.sleep(2.0)
        assert not client.said_events("note"), client.said_events("note")
        during = [frame for t, frame in client.frames if first_sound <= t <= first_sound + 2.0]
        assert len(during) >= 20, f"{len(during)} face frames in the first 2 s of the answer"
        assert during[0].width == 128 or during[0].height == 128
        # a live face, not one still picture (its mouth motion against the audio is tested in test_live_video.py)
        pictures = [f.to_ndarray(format="gray").astype(np.int16) for f in during[::5]]
        assert max(np.abs(a - b).mean() for a, b in zip(pictures, pictures[1:])) > 0.5
    finally:
        await client.close()
