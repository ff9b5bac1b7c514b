"""The engines on a real local Ray Serve (DOPPEL_ENGINES=ray): a voice question answered with text, voice and video,
the first sentence spoken while the model is still writing, several voices sharing one replica.

One Ray for the module (2 CPUs, 127.0.0.1, no dashboard), the shipped deploy/engines.yaml at one replica per
deployment asking for no CPU (five replicas would not fit two logical CPUs otherwise). The language model is the
loopback OpenAI-compatible server, which the ChatModel replica reaches over HTTP like a hosted provider.
"""
from __future__ import annotations

import asyncio
import os
import shutil

import pytest
import pytest_asyncio

os.environ.setdefault("RAY_DEDUP_LOGS", "0")

from adapters.media import decode_audio
from adapters.settings import Settings
from bot.common.demo import DEMO_VOICE, install_demo
from bot.wiring import build_engines, build_services
from core.errors import BadInput, NoSpeech
from core.pipeline import ReplyRequest
from core.types import (Audio, AudioFrame, ConversationKey, ReplyDone, SentenceFrame, TranscriptFrame,
                        VideoFrame, VoiceEngine)
from tests.fakes.llm_servers import FakeLLMServer, Reply
from tests.speech import speech_clips
from tests.voice_fixtures import write_tiny_hubert, write_tiny_rvc

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

ANSWER = ["I keep", " my notes", " in the inbox.", " Then I sort", " them", " every evening.", " That works."]


@pytest.fixture(scope="module")
def ray_local():
    import ray

    from deploy.cluster import local_ray_environment

    local_ray_environment()
    ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=100 * 1024**2,
             _node_ip_address="127.0.0.1", log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()  # takes Serve's actors with it, quicker than serve.shutdown() draining each replica


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def llm_server():
    async with FakeLLMServer("openai", [Reply(pieces=ANSWER, piece_delay=0.05)]) as server:
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def ray_services(ray_local, llm_server, tmp_path_factory):
    from deploy.cluster import config_of, deploy

    data = tmp_path_factory.mktemp("ray")
    models = data / "rvc-models"  # where the replicas read RVC models, as the bot writes them
    models.mkdir()
    write_tiny_hubert(models / "hubert_base.pt")
    settings = Settings(_env_file=None, data_dir=data, engines="ray", llm_provider="openai", llm_model="fake",
                        openai_base_url=llm_server.base_url, openai_api_key="sk-test", asr_multilingual=False,
                        rvc_models_dir=models)
    config = config_of(settings).with_replicas(1).with_actor_options(num_cpus=0)
    config.deployments["VoiceConversion"]["max_models_per_replica"] = 2
    await asyncio.to_thread(deploy, settings, config)
    engines = build_engines(settings)
    services = await build_services(settings, engines=engines)
    await install_demo(services)
    try:
        yield services
    finally:
        await services.close()


def _request(services, user: str, **kwargs) -> ReplyRequest:
    return ReplyRequest(key=ConversationKey(user, user), persona=services.personas.get("default"), language="en", **kwargs)


async def test_a_voice_question_gets_text_voice_and_video_from_the_ray_engines(ray_services, llm_server):
    path, _, truth = speech_clips("en")[0]
    llm_server.script(Reply(pieces=ANSWER))
    frames = [f async for f in ray_services.pipeline.run(
        _request(ray_services, "voice", audio=decode_audio(path.read_bytes()), voice="demo", avatar="demo"))]

    heard = next(f for f in frames if isinstance(f, TranscriptFrame)).transcript.text
    assert set(heard.lower().split()) & set(truth.lower().split())  # the ASR replica heard the clip
    assert llm_server.requests[-1].body["messages"][-1]["content"] == heard  # and the model was asked it
    audio = [f for f in frames if isinstance(f, AudioFrame)]
    assert [f.text for f in audio] == ["I keep my notes in the inbox.", "Then I sort them every evening.", "That works."]
    assert all(f.audio.seconds > 0.5 and abs(f.audio.samples).max() > 0.05 for f in audio)
    video = next(f for f in frames if isinstance(f, VideoFrame))
    assert video.mp4[4:8] == b"ftyp" and video.seconds > 1.0
    done = frames[-1]
    assert isinstance(done, ReplyDone) and done.text.endswith("That works.")
    history = await ray_services.history.load(ConversationKey("voice", "voice"), 1000)
    assert [m.content for m in history] == [heard, done.text]


async def test_the_first_sentence_is_spoken_while_the_model_is_still_writing(ray_services, llm_server):
    release = asyncio.Event()
    llm_server.script(Reply(pieces=ANSWER, hold_after=4, release=release))  # holds after " Then I sort"
    sent, finished = llm_server.pieces_sent, llm_server.finished_streams  # counted over the server's life
    first_audio_at = None
    frames = []
    async with asyncio.timeout(60):
        async for frame in ray_services.pipeline.run(_request(ray_services, "stream", text="Where do you keep notes?")):
            frames.append(frame)
            if isinstance(frame, AudioFrame) and first_audio_at is None:
                # the model has written only its first sentence and is waiting: the rest cannot exist yet
                first_audio_at = (llm_server.pieces_sent - sent, llm_server.finished_streams - finished)
                release.set()
    assert first_audio_at is not None and first_audio_at == (4, 0)
    assert [f.text for f in frames if isinstance(f, SentenceFrame)][-1] == "That works."
    assert isinstance(frames[-1], ReplyDone)


async def test_an_answer_cut_short_by_the_bot_stops_the_model_on_its_replica(ray_services, llm_server):
    # a spoken answer keeps three sentences (the default persona): the model's other five are never asked for
    long = [f" Sentence {n} is here." for n in range(1, 9)]
    llm_server.script(Reply(pieces=long, piece_delay=0.3))
    sent, finished = llm_server.pieces_sent, llm_server.finished_streams
    frames = [f async for f in ray_services.pipeline.run(_request(ray_services, "cut", text="Tell me everything."))]
    assert [f.text for f in frames if isinstance(f, SentenceFrame)] == [p.strip() for p in long[:3]]
    await asyncio.sleep(8 * 0.3)  # longer than the rest of the stream would take
    assert llm_server.finished_streams == finished and llm_server.pieces_sent - sent < len(long)


async def test_three_voices_share_one_replica_through_multiplexing(ray_services):
    services = ray_services
    for name in ("anna", "ben", "cleo"):  # three trained voices, each its own model file
        artifact = services.settings.data_dir / f"{name}.lite.pt"
        shutil.copyfile(DEMO_VOICE, artifact)
        await services.voices.upsert(name, VoiceEngine.LITE, "en", ready=True, params={"artifact": str(artifact)})
    for name in ("anna", "ben"):
        spoken = [f async for f in services.pipeline.speak(_request(services, name, text="Good morning.", voice=name))]
        assert spoken and spoken[0].audio.seconds > 0.3
    converter = services.converters[VoiceEngine.LITE].handle
    replica = await converter.describe.remote()
    assert sorted(m.split(":")[0] for m in replica["loaded"]) == ["anna", "ben"]  # one replica holds both

    [f async for f in services.pipeline.speak(_request(services, "cleo", text="Good morning.", voice="cleo"))]
    after = await converter.describe.remote()
    assert after["replica"] == replica["replica"]
    # two models per replica in this config: the least recently used voice made room for the third
    assert [m.split(":")[0] for m in after["loaded"]] == ["ben", "cleo"] and after["loads"] == replica["loads"] + 1


async def test_an_rvc_voice_is_tried_on_the_replicas_before_it_is_kept_then_speaks(ray_services, tmp_path):
    from bot.common.rvc_voices import add_rvc_voice

    services = ray_services
    write_tiny_rvc(tmp_path / "zed.pth")
    model = ("zed.pth", (tmp_path / "zed.pth").read_bytes())
    with pytest.raises(BadInput, match="test sentence could not be converted"):  # the replica's refusal, carried back
        await add_rvc_voice(services, "zed", model, index=("zed.npy", b"not an index"))
    assert "zed" not in await services.voices.names()

    registered = await add_rvc_voice(services, "zed", model, settings={"pitch_shift": 2})
    assert registered.voice.ready and registered.test_seconds > 1.0 and registered.sample_rate == 40000
    assert sorted(p.name for p in services.settings.rvc_models_dir.iterdir()) == ["hubert_base.pt", "zed.pth"]
    spoken = [f async for f in services.pipeline.speak(_request(services, "zed", text="Good morning.", voice="zed"))]
    assert spoken and spoken[0].audio.seconds > 0.3


async def test_an_engine_error_reaches_the_user_as_the_same_error(ray_services):
    with pytest.raises(NoSpeech) as caught:
        async for _ in ray_services.pipeline.run(_request(ray_services, "silence", audio=Audio.silence(2.0, 16000))):
            pass
    assert caught.value.message == NoSpeech.default_message


async def test_the_shipped_config_is_refused_when_it_names_an_unknown_option(tmp_path):
    from core.errors import BadInput
    from deploy.config import load_config

    assert load_config().models_per_replica("VoiceConversion") >= 2
    bad = tmp_path / "engines.yaml"
    bad.write_text("deployments:\n  ChatModel:\n    num_replica: 2\n")
    with pytest.raises(BadInput, match="num_replica"):
        load_config(bad)


async def test_the_cluster_commands_show_the_deployments_and_need_an_address(ray_services, monkeypatch):
    from bot.cli import build_parser, cmd_engines
    from core.errors import StartupError
    from deploy.cluster import config_lines, status_lines
    from deploy.config import load_config

    lines = status_lines("doppel-engines")
    assert lines[0] == "doppel-engines: RUNNING"
    assert sorted(line.split()[0] for line in lines[1:]) == sorted(
        ["ChatModel", "SpeechRecognition", "SpeechSynthesis", "VoiceConversion", "AvatarRendering", "EngineGraph"])
    assert all(line.endswith("healthy: 1 running") for line in lines[1:])
    assert "1-16 replicas (target 2 ongoing), 2 CPU, 0 GPU, 4 models each" in "\n".join(config_lines(load_config()))

    monkeypatch.delenv("DOPPEL_RAY_ADDRESS", raising=False)
    monkeypatch.chdir(ray_services.settings.data_dir)  # no .env here
    with pytest.raises(StartupError, match="DOPPEL_RAY_ADDRESS: empty"):
        await cmd_engines(build_parser().parse_args(["engines", "serve"]))
