"""Deleting an RVC voice removes its model and index from the models folder, so its name can be registered
again (they stayed, and every new registration of the name was refused as "already in the models folder")."""
from __future__ import annotations

import asyncio
import io

import numpy as np
import pytest

from bot.cli import main
from bot.common.rvc_voices import add_rvc_voice
from adapters.settings import Settings
from bot.wiring import build_services
from tests.test_rvc_register import _engines_for, _models_dir
from tests.voice_fixtures import write_tiny_rvc

pytestmark = pytest.mark.slow


async def test_a_deleted_rvc_voice_leaves_no_files_and_its_name_is_free_again(tmp_path, engines, monkeypatch):
    models = _models_dir(tmp_path)
    settings = Settings(_env_file=None, data_dir=tmp_path / "var", rvc_models_dir=models)
    model = ("anna.pth", write_tiny_rvc(tmp_path / "anna.pth").read_bytes())
    features = io.BytesIO()
    np.save(features, np.random.default_rng(0).normal(size=(64, 768)).astype(np.float32))
    index = ("anna.npy", features.getvalue())
    services = await build_services(settings, engines=_engines_for(settings, engines))
    try:
        await add_rvc_voice(services, "anna", model, index)
        await add_rvc_voice(services, "bob", ("bob.pth", model[1]))
        assert sorted(p.name for p in models.iterdir()) == ["anna.npy", "anna.pth", "bob.pth", "hubert_base.pt"]
    finally:
        await services.close()

    # as an admin deletes it: `doppel voices delete anna`
    monkeypatch.setenv("DOPPEL_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("DOPPEL_RVC_MODELS_DIR", str(models))
    assert await asyncio.to_thread(main, ["voices", "delete", "anna"]) == 0  # its own event loop, off this one
    # the content encoder every RVC voice shares, and the other voice's model, stay
    assert sorted(p.name for p in models.iterdir()) == ["bob.pth", "hubert_base.pt"]

    services = await build_services(settings, engines=_engines_for(settings, engines))
    try:
        again = await add_rvc_voice(services, "anna", model, index)
        assert again.voice.ready and await services.voices.names() == ["anna", "bob"]
    finally:
        await services.close()
