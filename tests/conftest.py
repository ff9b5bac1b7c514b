"""Shared fixtures. Models load once per test session; each test gets its own database and data folder."""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.engines import Engines
from adapters.settings import Settings
from bot.wiring import build_engines, build_services

# voices are trained with the quick profile in tests (its intake minimum is 2 s of speech, not 30);
# set before any Settings is made, and inherited by the subprocesses tests start
os.environ.setdefault("DOPPEL_VOICE_TRAIN_PROFILE", "tiny")

ROOT = Path(__file__).resolve().parent.parent


# fixtures that load real models: a test given one is slow by the marker's own meaning (`make check` leaves it out)
MODEL_FIXTURES = {"engines", "local_model", "piper"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if MODEL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def engines(tmp_path_factory) -> Engines:
    # one set of loaded models for the whole session (the joined multilingual Whisper is joined once, here)
    return build_engines(Settings(_env_file=None, data_dir=tmp_path_factory.mktemp("engines")))


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(_env_file=None, data_dir=tmp_path / "var")


@pytest.fixture
async def services(settings, engines):
    svc = await build_services(settings, engines=engines)
    try:
        yield svc
    finally:
        await svc.close()


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    # tiny networks gain nothing from a second thread, and on a busy machine its spinning costs seconds a step
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
