"""Shared fixtures. Models load once per test session; each test gets its own database and data folder."""
from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from adapters.engines import Engines
from adapters.settings import Settings
from bot.wiring import build_engines, build_services

# voices are trained with the quick profile in tests (its intake minimum is 2 s of speech, not 30);
# set before any Settings is made, and inherited by the subprocesses tests start
os.environ.setdefault("DOPPEL_VOICE_TRAIN_PROFILE", "tiny")

ROOT = Path(__file__).resolve().parent.parent
SPEECH = ROOT.parent / "shared" / "data" / "speech"


def speech_clips(lang: str = "en", min_seconds: float = 0.0) -> list[tuple[Path, float, str]]:
    """(path, seconds, ground-truth text) of the shared real speech clips, in file order."""
    rows = []
    with open(SPEECH / lang / "transcripts.tsv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            if float(row["seconds"]) >= min_seconds:
                rows.append((SPEECH / lang / f"{row['clip']}.ogg", float(row["seconds"]), row["text"]))
    return rows


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
