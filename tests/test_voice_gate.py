"""Cloned voices a user can trust: the quality gate's judgement, and no noise ever sent in a cloned voice."""
from __future__ import annotations

import json

import numpy as np
import pytest

from adapters.media import decode_audio
from adapters.wer import wer
from core.pipeline import ReplyRequest
from core.types import Audio, AudioFrame, ConversationKey, FallbackAudio, NoteFrame, Persona, Voice, VoiceEngine
from RVC.client import WorkerConverter
from RVC.quality_gate import TEST_SENTENCES, GateLimits, held_apart, judge, score_voice, training_clips
from RVC.speech_check import check_speech
from tests.conftest import ROOT, SPEECH, speech_clips
from tests.telegram_support import bot_settings, fake_tg, running_bot, texts_to  # noqa: F401 - a pytest fixture, requested by name

SPLIT = json.loads((ROOT / "RVC" / "data" / "en_split.json").read_text())


def _recording(name: str) -> np.ndarray:
    return decode_audio((SPEECH / "en" / f"{name}.ogg").read_bytes()).samples


def _texts() -> dict[str, str]:
    return {p.stem: text for p, _, text in speech_clips("en")}


def _hiss(seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 0.1, int(seconds * 16000)).astype(np.float32)


@pytest.fixture(scope="module")
def untrained_voice(tmp_path_factory):
    """A lite artifact that learned nothing: what a voice trained a few steps on a CPU sounds like."""
    from RVC.lite_model import LiteConfig, LiteNet
    from RVC.lite_train import export

    cfg = LiteConfig.tiny()
    rng = np.random.default_rng(1)
    basis = np.linalg.qr(rng.normal(size=(512, cfg.content_dims)))[0]
    path = tmp_path_factory.mktemp("untrained") / "lite-v1.pt"
    return export(LiteNet(cfg), {"pca_mean": np.zeros(512), "pca_basis": basis, "f0_stats": (np.log(200.0), 0.2)},
                  path, steps=0, seconds=0.0)


# ---- the gate ----

@pytest.mark.slow
def test_the_gate_accepts_a_voice_that_sounds_exactly_like_the_speaker(engines):
    # The honest "good" voice: for each test sentence the converter returns the speaker's own recording of it
    # (the ceiling any clone aims at). The centroid is built from other recordings of hers, never these.
    texts = _texts()
    scored = SPLIT["eval"][:5]
    recordings = iter([_recording(n) for n in scored])
    scores = score_voice(lambda samples, rate: (next(recordings), 16000), [_recording(n) for n in SPLIT["reference"][:8]],
                         tts=engines.synthesizers[0], asr=engines.recognizer, held=True,
                         sentences=[texts[n] for n in scored])
    assert judge(scores, GateLimits()) == [], scores
    assert scores.similarity > 0.85 and scores.base_similarity < 0.65
    assert scores.wer <= 0.15


@pytest.mark.slow
def test_the_gate_refuses_a_voice_that_only_passes_the_base_voice_through(engines):
    scores = score_voice(lambda samples, rate: (samples, rate), [_recording(n) for n in SPLIT["reference"][:8]],
                         tts=engines.synthesizers[0], asr=engines.recognizer, held=True, sentences=TEST_SENTENCES[:3])
    short = judge(scores, GateLimits())
    assert len(short) == 1 and short[0].startswith("similarity"), short  # intelligible, but not her voice
    assert scores.similarity == pytest.approx(scores.base_similarity)


def test_clips_are_held_apart_from_training_only_when_there_are_enough(tmp_path):
    for i in range(4):
        (tmp_path / f"clip-{i:03d}.wav").write_bytes(b"")
    assert held_apart(sorted(tmp_path.glob("clip-*.wav"))) == [] and len(training_clips(tmp_path)) == 4
    for i in range(4, 17):
        (tmp_path / f"clip-{i:03d}.wav").write_bytes(b"")
    held = [p.name for p in held_apart(sorted(tmp_path.glob("clip-*.wav")))]
    assert held == ["clip-007.wav", "clip-015.wav"]
    assert sorted(p.name for p in training_clips(tmp_path)) == sorted(
        p.name for p in tmp_path.glob("clip-*.wav") if p.name not in held)


# ---- no noise leaves ----

def test_speech_passes_the_check_and_noise_does_not(untrained_voice, engines):
    for lang in ("en", "fr", "es"):
        for path, _, _ in speech_clips(lang, 2.0)[:3]:
            verdict = check_speech(decode_audio(path.read_bytes()).samples, 16000)
            assert verdict.is_speech, (path.name, verdict)
    piper = engines.synthesizers[0].synthesize_sync("Please call me back when you get home tonight.")
    assert check_speech(piper.samples, piper.sample_rate).is_speech

    hum = (0.3 + 0.05 * np.sin(2 * np.pi * 50 * np.arange(32000) / 16000)).astype(np.float32)
    for noise in (_hiss(), hum, np.zeros(32000, np.float32)):
        assert not check_speech(noise, 16000).is_speech
    from RVC.engines.lite import LiteEngine
    from RVC.features import bundled_content

    out, rate = LiteEngine(bundled_content(ROOT / "var" / "cache"), runtime="torch").convert(
        piper.samples, piper.sample_rate, {"artifact": str(untrained_voice)})
    verdict = check_speech(out, rate)
    assert not verdict.is_speech and verdict.problem, verdict


class ReplayWorker:
    """A voice worker that answers each request with the next of the given outputs."""

    def __init__(self, outputs: list[Audio]) -> None:
        self.outputs = list(outputs)

    async def stream(self, requests):
        for _ in requests:
            yield self.outputs.pop(0)

    async def close(self) -> None:
        pass


async def test_noise_from_the_worker_becomes_the_base_voice_and_speech_passes_unchanged(engines):
    voice = Voice("anna", VoiceEngine.LITE, params={"artifact": "x"})
    base = engines.synthesizers[0].synthesize_sync("Thank you for waiting, your order is almost ready.")
    speech = Audio(_recording(SPLIT["eval"][0]), 16000)

    kept = await WorkerConverter(ReplayWorker([speech])).convert(base, voice)
    assert kept is speech

    replaced = await WorkerConverter(ReplayWorker([Audio(_hiss(base.seconds), 16000)])).convert(base, voice)
    assert isinstance(replaced, FallbackAudio) and "anna" in replaced.note
    assert replaced.sample_rate == 16000 and replaced.seconds == pytest.approx(base.seconds, abs=0.01)
    heard = engines.recognizer.transcribe_sync(replaced, "en").text
    assert wer(["Thank you for waiting, your order is almost ready."], [heard]) <= 0.2

    both = [a async for a in WorkerConverter(ReplayWorker([speech, Audio(_hiss(), 16000)])).convert_all([base, base], voice)]
    assert [isinstance(a, FallbackAudio) for a in both] == [False, True]
    assert all(check_speech(a.samples, a.sample_rate).is_speech for a in both)


@pytest.mark.slow
async def test_a_reply_in_an_untrained_voice_is_spoken_in_the_base_voice_with_one_note(services, untrained_voice):
    await services.voices.upsert("hiss", VoiceEngine.LITE, ready=True, params={"artifact": str(untrained_voice)})
    persona = Persona("plain", "Answer in two short sentences.", max_sentences=2)
    request = ReplyRequest(ConversationKey("u", "c"), persona, text="Tell me about the weather today.", voice="hiss")
    frames = [f async for f in services.pipeline.run(request)]
    notes = [f for f in frames if isinstance(f, NoteFrame)]
    spoken = [f for f in frames if isinstance(f, AudioFrame)]
    assert len(notes) == 1 and "hiss" in notes[0].text and spoken
    assert frames.index(notes[0]) == frames.index(spoken[0]) - 1  # shown with the first sentence that needed it
    for frame in spoken:
        assert check_speech(frame.audio.samples, frame.audio.sample_rate).is_speech
    heard = [services.recognizer.transcribe_sync(f.audio, "en").text for f in spoken]
    assert wer([f.text for f in spoken], heard) <= 0.35, (heard, [f.text for f in spoken])


@pytest.mark.slow
async def test_the_web_shows_the_note_once_and_the_admin_sees_the_scores(tmp_path, engines, untrained_voice):
    import re

    import aiohttp

    from bot.settings import Settings
    from bot.wiring import build_services
    from tests.web_harness import live_server

    settings = Settings(_env_file=None, data_dir=tmp_path / "var", web_admin_password="pw", web_secret="s")
    services = await build_services(settings, engines=engines)
    await services.voices.upsert("hiss", VoiceEngine.LITE, ready=True, params={"artifact": str(untrained_voice)})
    await services.voices.upsert("refused", VoiceEngine.LITE, ready=False, params={"quality": {
        "similarity": 0.455, "base_similarity": 0.496, "wer": 1.0, "base_wer": 0.026, "passed": False,
        "artifact": "lite-v2.pt"}})
    try:
        async with live_server(services) as site, aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            page = await (await http.get(site.url + "/")).text()
            token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
            r = await http.post(site.url + "/chat/settings", data={"csrf": token, "voice": "hiss", "persona": "default"})
            assert r.status == 200
            form = aiohttp.FormData({"csrf": token, "text": "Tell me about the weather today."})
            events = await (await http.post(site.url + "/chat/turn", data=form)).text()
            assert events.count("event: note") == 1 and "hiss" in events and "event: done" in events
            assert events.index("event: note") < events.index("event: audio")

            r = await http.post(site.url + "/admin/login", data={"csrf": token, "password": "pw"})
            admin = await (await http.get(site.url + "/admin/voices")).text()
            assert "voice refused: not ready" in admin  # the lifecycle's state line: nothing serves
            assert "Quality check failed (lite-v2.pt): similarity 0.46 (base voice 0.50), WER 100% (base voice 3%)" in admin
    finally:
        await services.close()


@pytest.mark.slow
async def test_telegram_sends_the_note_once_beside_a_voice_note_that_is_speech(fake_tg, tmp_path, engines, untrained_voice):
    user = 777
    async with running_bot(bot_settings(tmp_path, fake_tg), engines) as (_app, services):
        await services.voices.upsert("hiss", VoiceEngine.LITE, ready=True, params={"artifact": str(untrained_voice)})
        fake_tg.text_update(user, "/voice hiss")
        await fake_tg.wait_for(lambda: texts_to(fake_tg, user), 30)
        path, _, _ = speech_clips("en", 4.0)[0]
        fake_tg.voice_update(user, path.read_bytes(), duration=5)
        voice = (await fake_tg.wait_for(lambda: fake_tg.sent_to(user, "sendVoice"), 120))[0]
        notes = [t for t in texts_to(fake_tg, user) if "plain voice" in t]
        assert len(notes) == 1 and "'hiss'" in notes[0]
        spoken = decode_audio(voice.files["voice"])
        assert check_speech(spoken.samples, spoken.sample_rate).is_speech


def test_a_voice_fine_tuned_on_a_cpu_is_held_to_the_cpu_goal_and_told_it_needs_a_gpu():
    from RVC.quality_gate import CPU_LIMITS, VoiceScores, refusal

    def scores(similarity: float, wer: float) -> VoiceScores:
        return VoiceScores(similarity=similarity, base_similarity=0.5, wer=wer, base_wer=0.03, sentences=8,
                           centroid_clips=4, held_apart=True, seconds=1.0)

    assert judge(scores(0.79, 0.07), CPU_LIMITS) == []  # within the goal: served
    short = judge(scores(0.79, 0.09), CPU_LIMITS)  # the CPU path as measured: 6 points above
    assert judge(scores(0.79, 0.09), GateLimits()) == [] and len(short) == 1 and short[0].startswith("WER")
    assert "needs a GPU" in refusal(scores(0.79, 0.09), short, CPU_LIMITS)
    assert "needs a GPU" not in refusal(scores(0.79, 0.09), short, GateLimits())
