"""An admin registers an RVC voice from its files (CLI, Telegram): checked in full, refused with nothing kept, or
ready at once and speaking the next answer."""
from __future__ import annotations

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

from adapters.engines import Engines
from adapters.settings import Settings
from bot.common.rvc_voices import add_rvc_voice
from bot.wiring import build_converters, build_services
from core.errors import BadInput
from core.types import VoiceEngine
from tests.conftest import ROOT
from tests.telegram_support import ADMIN, bot_settings, fake_tg, running_bot, texts_to  # noqa: F401 - a pytest fixture, requested by name
from tests.voice_fixtures import write_tiny_hubert, write_tiny_rvc

USER = 611


@pytest.fixture
def uploads(tmp_path):
    """What an admin has on disk: a tiny v2 model in the official layout, its features as an index."""
    folder = tmp_path / "uploads"
    folder.mkdir()
    write_tiny_rvc(folder / "anna.pth")
    np.save(folder / "anna.npy", np.random.default_rng(0).normal(size=(64, 768)).astype(np.float32))
    return folder


def _models_dir(tmp_path):
    models = tmp_path / "models"
    models.mkdir(exist_ok=True)
    write_tiny_hubert(models / "hubert_base.pt")
    return models


def _engines_for(settings: Settings, shared: Engines) -> Engines:
    # the shared recognizer and LLM, with a voice worker that reads this test's models folder
    return Engines(recognizer=shared.recognizer, chat_model=shared.chat_model, synthesizers=shared.synthesizers,
                   converters=build_converters(settings), renderer=None)


@pytest.mark.slow
async def test_cli_add_rvc_registers_a_ready_voice(tmp_path, uploads, engines):
    models = _models_dir(tmp_path)
    env = {**os.environ, "DOPPEL_DATA_DIR": str(tmp_path / "var"), "DOPPEL_RVC_MODELS_DIR": str(models)}
    run = subprocess.run([sys.executable, "-m", "bot.cli", "voices", "add-rvc", "anna", str(uploads / "anna.pth"),
                          "--index", str(uploads / "anna.npy"), "--pitch", "3", "--protect", "0.4"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "RVC v2, 40000 Hz" in run.stdout and "ready" in run.stdout
    assert sorted(p.name for p in models.iterdir()) == ["anna.npy", "anna.pth", "hubert_base.pt"]
    services = await build_services(Settings(_env_file=None, data_dir=tmp_path / "var", rvc_models_dir=models),
                                    engines=engines)
    try:
        voice = await services.voices.get("anna")
        assert voice.engine is VoiceEngine.RVC and voice.ready
        assert voice.params == {"model": "anna.pth", "index": "anna.npy", "index_rate": 0.75, "pitch_shift": 3.0,
                                "f0_method": "yin", "protect": 0.4, "rms_mix_rate": 0.25, "speaker_id": 0,
                                "content_model": "hubert_base.pt"}
        with pytest.raises(BadInput, match="already a voice called 'anna'"):
            await add_rvc_voice(services, "anna", ("anna.pth", (uploads / "anna.pth").read_bytes()))
    finally:
        await services.close()


async def test_a_refused_upload_leaves_nothing_behind(tmp_path, uploads, engines):
    models = _models_dir(tmp_path)
    settings = Settings(_env_file=None, data_dir=tmp_path / "var", rvc_models_dir=models)
    services = await build_services(settings, engines=_engines_for(settings, engines))
    model = ("anna.pth", (uploads / "anna.pth").read_bytes())
    marker = tmp_path / "marker"

    class Payload:
        def __reduce__(self):
            return exec, (f"open({str(marker)!r}, 'w').write('pwned')",)

    try:
        refusals = [
            (dict(model=("evil.pth", pickle.dumps(Payload()))), "could not be read safely"),
            (dict(model=model, index=("anna.index", pickle.dumps(Payload()))), "index 'anna.index' could not be read"),
            (dict(model=model, index=("anna.npy", np.zeros((4, 100), np.float32).tobytes())), "index"),
            (dict(model=model, settings={"speaker_id": 5}), "speaker ids 0 to 1"),
            (dict(model=model, settings={"protect": 0.9}), "protect must be between 0 and 0.5"),
            (dict(model=model, settings={"f0_method": "crepe"}), "Unknown F0 method"),
            (dict(model=("anna.ogg", b"OggS")), "must be the .pth"),
        ]
        for kwargs, message in refusals:
            with pytest.raises(BadInput, match=message):
                await add_rvc_voice(services, "anna", **kwargs)
        (models / "hubert_base.pt").unlink()
        with pytest.raises(BadInput, match=r"hubert_base\.pt"):
            await add_rvc_voice(services, "anna", model)

        assert not marker.exists(), "code inside an upload ran"
        assert await services.voices.names() == []
        assert list(models.iterdir()) == [], "a refused upload left files behind"
    finally:
        await services.close()


@pytest.mark.slow
async def test_telegram_add_rvc_then_the_voice_answers(fake_tg, tmp_path, uploads, engines):
    models = _models_dir(tmp_path)
    settings = bot_settings(tmp_path, fake_tg, rvc_models_dir=models, reply_voice_to_text=True,
                            telegram_max_download=1024 * 1024)
    async with running_bot(settings, _engines_for(settings, engines)) as (_app, services):
        fake_tg.text_update(ADMIN, "/add_rvc anna pitch=2 index_rate=0.5")
        await fake_tg.wait_for(lambda: any("as a file (.pth)" in t for t in texts_to(fake_tg, ADMIN)), 30)
        # a real model is often past the Bot API's download limit: refused at once, with what works instead
        fake_tg.document_update(ADMIN, b"\0" * (1024 * 1024 + 1), "big.pth", "application/octet-stream")
        await fake_tg.wait_for(lambda: any("doppel voices add-rvc" in t for t in texts_to(fake_tg, ADMIN)), 30)
        fake_tg.document_update(ADMIN, (uploads / "anna.pth").read_bytes(), "anna.pth", "application/octet-stream")
        await fake_tg.wait_for(lambda: any("Got the model" in t for t in texts_to(fake_tg, ADMIN)), 30)
        fake_tg.document_update(ADMIN, (uploads / "anna.npy").read_bytes(), "anna.npy", "application/octet-stream")
        await fake_tg.wait_for(lambda: any("Got the index" in t for t in texts_to(fake_tg, ADMIN)), 30)
        fake_tg.text_update(ADMIN, "/done")
        done = await fake_tg.wait_for(lambda: [t for t in texts_to(fake_tg, ADMIN) if "is ready" in t], 120)
        assert "RVC v2, 40000 Hz, with its index" in done[0]
        voice = await services.voices.get("anna")
        assert voice.engine is VoiceEngine.RVC and voice.ready
        assert (voice.params["model"], voice.params["index"], voice.params["pitch_shift"]) == ("anna.pth", "anna.npy", 2.0)

        fake_tg.text_update(USER, "/voice anna")
        await fake_tg.wait_for(lambda: texts_to(fake_tg, USER), 30)
        fake_tg.text_update(USER, "Say hello.")
        sent = await fake_tg.wait_for(lambda: fake_tg.sent_to(USER, "sendVoice"), 180)
        assert sent[0].files["voice"][:4] == b"OggS"
        worker = services.converters[VoiceEngine.RVC].worker
        assert worker.service.served >= 2, "the answer did not go through the RVC voice"  # the test sentence + the answer


async def test_discord_add_rvc_from_attachments(tmp_path, uploads, engines):
    from tests.fakes.discord_api import Upload
    from tests.fakes.discord_bot import discord_world

    models = _models_dir(tmp_path)
    own = _engines_for(Settings(_env_file=None, data_dir=tmp_path / "var", rvc_models_dir=models), engines)
    async with discord_world(tmp_path, own, rvc_models_dir=models) as world:
        fake = world.fake
        await fake.invoke("add_rvc", world.admin, world.channel, name="anna", pitch=1.5,
                          model=Upload("anna.pth", b"PK\x03\x04 not really a model", "application/octet-stream"))
        refusal = await fake.wait_for(lambda m: m.by_bot and "could not be read safely" in m.content)
        # an error after the deferral goes privately to the admin who asked
        assert refusal.payload.get("flags", 0) & 64 and await world.services.voices.names() == []

        await fake.invoke("add_rvc", world.admin, world.channel, name="anna", pitch=1.5, f0_method="harvest",
                          model=Upload("anna.pth", (uploads / "anna.pth").read_bytes(), "application/octet-stream"))
        await fake.wait_for(lambda m: m.by_bot and "Voice **anna** is ready: RVC v2, 40000 Hz" in m.content, 120)
        voice = await world.services.voices.get("anna")
        assert (voice.params["pitch_shift"], voice.params["f0_method"], voice.ready) == (1.5, "harvest", True)


async def test_web_admin_uploads_an_rvc_model(tmp_path, uploads, engines):
    import re

    import aiohttp

    from tests.web_harness import live_server

    models = _models_dir(tmp_path)
    settings = Settings(_env_file=None, data_dir=tmp_path / "var", rvc_models_dir=models, web_admin_password="pw",
                        web_secret="s" * 32)
    services = await build_services(settings, engines=_engines_for(settings, engines))
    try:
        async with live_server(services) as site, aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            login = await (await http.get(site.url + "/admin/login")).text()
            token = re.search(r'name="csrf-token" content="([^"]+)"', login).group(1)
            await http.post(site.url + "/admin/login", data={"csrf": token, "password": "pw"})
            page = await (await http.get(site.url + "/admin/voices")).text()
            assert 'action="/admin/voices/rvc"' in page
            token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)

            def form(model: bytes) -> aiohttp.FormData:
                f = aiohttp.FormData()
                for key, value in {"csrf": token, "name": "anna", "pitch_shift": "-2", "f0_method": "yin",
                                   "index_rate": "0.5", "protect": "0.33"}.items():
                    f.add_field(key, value)
                f.add_field("model", model, filename="anna.pth", content_type="application/octet-stream")
                f.add_field("index", (uploads / "anna.npy").read_bytes(), filename="anna.npy",
                            content_type="application/octet-stream")
                return f

            refused = await (await http.post(site.url + "/admin/voices/rvc", data=form(b"not a model"))).text()
            assert "could not be read safely" in refused and await services.voices.names() == []
            page = await (await http.post(site.url + "/admin/voices/rvc", data=form((uploads / "anna.pth").read_bytes()))).text()
            assert "Voice &#39;anna&#39; is ready: RVC v2, 40000 Hz." in page
        voice = await services.voices.get("anna")
        assert (voice.params["pitch_shift"], voice.params["index"], voice.ready) == (-2.0, "anna.npy", True)
    finally:
        await services.close()
