"""A user's story: a real voice question goes in, a spoken answer comes out, and the history keeps it."""
import asyncio
import os
import subprocess
import sys

import pytest

from adapters.media import decode_audio, encode_ogg_opus, probe
from bot.common.dialogue import Dialogue, Incoming
from core import audio as audio_ops
from core.languages import plan_answer
from core.types import AudioFrame, ConversationKey, ReplyDone, SentenceFrame, SpeechDone, TranscriptFrame
from tests.conftest import ROOT
from tests.speech import speech_clips


def question(name: str = "vm-savefolder") -> bytes:
    return next(p for p, _, _ in speech_clips("en") if p.stem == name).read_bytes()


async def run_reply(services, msg: Incoming):
    frames = [f async for f in Dialogue(services).reply(msg)]
    return frames


async def test_voice_question_gets_a_spoken_answer(services):
    frames = await run_reply(services, Incoming("tg:1", "tg:1", audio=question()))
    kinds = [type(f) for f in frames]
    assert kinds[0] is TranscriptFrame and kinds[-2] is SpeechDone and kinds[-1] is ReplyDone
    assert "folder" in frames[0].transcript.text.lower()
    chunks = [f.audio for f in frames if isinstance(f, AudioFrame)]
    assert chunks, "no audio came out"
    # every sentence's text comes before its audio, in order
    order = [(type(f).__name__, f.index) for f in frames if isinstance(f, (SentenceFrame, AudioFrame))]
    assert order == [(k, i) for i in range(len(chunks)) for k in ("SentenceFrame", "AudioFrame")]

    note = encode_ogg_opus(audio_ops.join(chunks))
    info = probe(note)
    assert info["format"] == "ogg" and info["audio_codec"] == "opus"
    heard = await services.recognizer.transcribe(decode_audio(note), "en")
    assert heard.text.strip(), "the voice reply has no intelligible speech"

    history = await services.history.load(ConversationKey("tg:1", "tg:1"), 10_000)
    assert [m.role for m in history] == ["user", "assistant"]
    assert history[1].content == frames[-1].text
    done = frames[-1]
    for stage in ("asr", "llm_first_sentence", "tts", "first_audio", "total"):
        assert done.timing(stage) is not None and done.timing(stage) > 0


async def test_histories_of_two_users_and_two_chats_stay_apart(services):
    d = Dialogue(services)
    for user, chat, text in [("tg:1", "tg:100", "My name is Ann."), ("tg:2", "tg:100", "My name is Bob."),
                             ("tg:1", "tg:200", "I like tea.")]:
        [f async for f in d.reply(Incoming(user, chat, text=text), speak=False)]
    ann = await services.history.load(ConversationKey("tg:1", "tg:100"), 10_000)
    bob = await services.history.load(ConversationKey("tg:2", "tg:100"), 10_000)
    other = await services.history.load(ConversationKey("tg:1", "tg:200"), 10_000)
    assert ann[0].content == "My name is Ann." and len(ann) == 2
    assert bob[0].content == "My name is Bob." and len(bob) == 2
    assert other[0].content == "I like tea." and len(other) == 2


async def test_the_model_sees_the_earlier_turns(services):
    key = ConversationKey("tg:5", "tg:5")
    await services.history.append_exchange(key, "Remember the word banana.", "Sure, banana.")
    request = await Dialogue(services).request_for(Incoming("tg:5", "tg:5", text="What word?"))
    messages = await services.pipeline._messages(request, "What word?", plan_answer("en", request.persona, None))
    assert [m.role for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[1].content == "Remember the word banana."


async def test_history_is_bounded_by_the_token_budget(services):
    key = ConversationKey("tg:6", "tg:6")
    for i in range(30):
        await services.history.append_exchange(key, f"question number {i} " * 5, f"answer number {i} " * 5)
    window = await services.history.load(key, 200)
    assert 0 < len(window) < 60
    assert window[0].role == "user"
    assert window[-1].content.startswith("answer number 29")


async def test_a_cancelled_reply_leaves_no_history(services):
    d = Dialogue(services)
    gen = d.reply(Incoming("tg:3", "tg:3", text="Tell me about the sea."))
    async for frame in gen:
        if isinstance(frame, SentenceFrame):
            break
    await gen.aclose()
    assert await services.history.count(ConversationKey("tg:3", "tg:3")) == 0


async def test_ten_concurrent_replies_all_complete(services):
    d = Dialogue(services)

    async def one(i: int):
        frames = [f async for f in d.reply(Incoming(f"tg:{i}", f"tg:{i}", text=f"Say hello to number {i}."))]
        return frames[-1]

    done = await asyncio.gather(*(one(i) for i in range(10)))
    assert all(isinstance(f, ReplyDone) and f.text for f in done)
    for i in range(10):
        history = await services.history.load(ConversationKey(f"tg:{i}", f"tg:{i}"), 10_000)
        assert history[0].content == f"Say hello to number {i}."


@pytest.mark.slow  # starts doppel twice
def test_history_survives_a_new_process(tmp_path):
    db = tmp_path / "doppel.db"
    env = {**os.environ, "DOPPEL_DATA_DIR": str(tmp_path / "var"), "DOPPEL_DATABASE_URL": f"sqlite+aiosqlite:///{db}"}
    cmd = [sys.executable, "-m", "bot.cli", "reply", "--text", "Hello there, my friend.", "--user", "7"]
    first = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert "answer:" in first.stdout

    check = (
        "import asyncio\n"
        "from adapters.settings import Settings\n"
        "from storage.db import create_engine, session_factory\n"
        "from storage.history import HistoryRepository\n"
        "from core.types import ConversationKey\n"
        "async def main():\n"
        "    e = create_engine(Settings().db_url)\n"
        "    h = HistoryRepository(session_factory(e))\n"
        "    print([m.role + ':' + m.content for m in await h.load(ConversationKey('cli:7', 'cli:7'), 10000)])\n"
        "    await e.dispose()\n"
        "asyncio.run(main())\n"
    )
    second = subprocess.run([sys.executable, "-c", check], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    assert "user:Hello there, my friend." in second.stdout
    assert "assistant:" in second.stdout


async def test_export_and_delete_a_users_data(services):
    key = ConversationKey("tg:9", "tg:9")
    await services.history.append_exchange(key, "hi", "hello")
    exported = await services.history.export_user("tg:9")
    assert [m["content"] for m in exported["messages"]] == ["hi", "hello"]
    assert await services.history.delete_user("tg:9") == 2
    assert await services.history.count(key) == 0


@pytest.mark.slow  # starts doppel
@pytest.mark.parametrize("name", ["vm-savefolder"])
async def test_cli_writes_an_ogg_voice_note(tmp_path, name):
    out = tmp_path / "reply.ogg"
    env = {**os.environ, "DOPPEL_DATA_DIR": str(tmp_path / "var")}
    src = tmp_path / "q.ogg"
    src.write_bytes(question(name))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "reply", "--audio", str(src), "--user", "42", "--out", str(out),
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 300)
    assert proc.returncode == 0, stderr.decode()
    text = stdout.decode()
    assert "you said:" in text and "answer:" in text and "first_audio=" in text
    assert probe(out.read_bytes())["audio_codec"] == "opus"
