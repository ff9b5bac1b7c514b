"""Mistakes in settings, files and the database end `doppel` with one line naming what to fix, never a traceback,
and nothing is stored for a reply that could not be delivered."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from adapters.settings import Settings
from bot.discord.app import DoppelDiscord, start
from bot.wiring import build_services
from core.errors import StartupError
from tests.conftest import ROOT
from tests.fakes.discord_api import FakeDiscord

BROKEN_PERSONA = 'name = "broken"\nsystem_prompt = "unterminated\n'


def doppel(monkeypatch, capsys, where, *args: str, **env: str) -> tuple[int, str]:
    """`doppel ARGS` as the command line runs it (bot.cli.main), in folder `where` with only these DOPPEL_ settings."""
    from bot.cli import main

    with monkeypatch.context() as patch:
        for name in [k for k in os.environ if k.startswith("DOPPEL_")]:
            patch.delenv(name)
        patch.setenv("DOPPEL_DATA_DIR", str(where / "var"))
        for name, value in env.items():
            patch.setenv(name, value)
        patch.chdir(where)
        capsys.readouterr()
        code = main(list(args))
    return code, capsys.readouterr().err


def _one_line(result: tuple[int, str], *needles: str) -> None:
    code, err = result
    err = err.strip()
    assert code == 2 and "Traceback" not in err and len(err.splitlines()) == 1, err[-1500:]
    for needle in needles:
        assert needle in err, err


def test_bad_settings_and_files_are_one_line_each(tmp_path, monkeypatch, capsys):
    personas = tmp_path / "personas"
    personas.mkdir()
    (personas / "broken.toml").write_text(BROKEN_PERSONA, encoding="utf-8")
    (tmp_path / "out").mkdir()
    cases = [
        (("reply", "--text", "hi"), {"DOPPEL_LLM_PROVIDER": "gpt5"}, ("DOPPEL_LLM_PROVIDER", "gpt5", "docs/llm.md")),
        (("reply", "--text", "hi"), {"DOPPEL_LLM_FALLBACK": "local,claude"}, ("DOPPEL_LLM_FALLBACK", "claude")),
        (("reply", "--text", "hi"), {"DOPPEL_VOICE_WORKER": "kubernetes"}, ("DOPPEL_VOICE_WORKER", "docs/voice-cloning.md")),
        (("reply", "--text", "hi"), {"DOPPEL_ENGINES": "kubernetes"}, ("DOPPEL_ENGINES", "kubernetes", "docs/cluster.md")),
        (("reply", "--text", "hi"), {"DOPPEL_ENGINES": "ray", "DOPPEL_RAY_CONFIG": str(personas / "broken.toml")},
         ("DOPPEL_RAY_CONFIG", "broken.toml", "deployments")),
        (("reply", "--text", "hi"), {"DOPPEL_ADMIN_IDS": "12,bob"}, ("DOPPEL_ADMIN_IDS", "docs/telegram.md")),
        (("reply", "--text", "hi"), {"DOPPEL_LOCAL_MODEL_PATH": str(tmp_path / "missing.gguf")},
         ("DOPPEL_LOCAL_MODEL_PATH", "missing.gguf")),
        (("reply", "--text", "hi"), {"DOPPEL_PERSONAS_DIR": str(personas)}, ("DOPPEL_PERSONAS_DIR", "broken.toml")),
        (("reply", "--text", "hi"), {"DOPPEL_PERSONA": "pirate"}, ("DOPPEL_PERSONA", "pirate")),
        (("reply", "--audio", str(tmp_path / "nowhere.ogg")), {}, ("nowhere.ogg", "no such file")),
        (("reply", "--audio", str(tmp_path)), {}, ("is a folder",)),
        (("reply", "--text", "hi", "--out", str(tmp_path / "out")), {}, ("--out", "is a folder")),
        (("worker", "--once"), {"DOPPEL_JOBS": "kubernetes"}, ("DOPPEL_JOBS", "kubernetes", "docs/cluster.md")),
        (("worker", "--once"), {"DOPPEL_JOBS": "ray", "DOPPEL_ARTIFACTS": "s4://bucket/doppel"},
         ("DOPPEL_ARTIFACTS", "s4")),
    ]
    for args, env, needles in cases:
        _one_line(doppel(monkeypatch, capsys, tmp_path, *args, **env), *needles)
    # none of those got as far as touching the database
    assert not (tmp_path / "var" / "doppel.db").exists()


def test_a_database_url_doppel_cannot_use_is_one_line_from_the_command_line(tmp_path):
    """Run as a user runs it, a process of its own: each of these printed a traceback."""
    missing = tmp_path / "no" / "such" / "folder"
    cases = [
        ("foo://host/db", ("'foo' is not a database SQLAlchemy knows",)),
        ("mysql+aiomysql://user@host/db", ("driver of 'mysql+aiomysql' is not installed",)),
        ("postgresql://user:secret@host/db", ("'postgresql' is not an async driver", "postgresql+asyncpg://")),
        ("postgresql+asyncpg://user:secret@host:port/db", ("not a database URL",)),
        ("sqlite:///doppel.db", ("'sqlite' is not an async driver", "sqlite+aiosqlite:///")),
        (f"sqlite+aiosqlite:///{missing / 'doppel.db'}", (f"the folder {missing} for the SQLite file does not exist",)),
    ]
    for url, needles in cases:
        for command in (("reply", "--text", "hi"), ("db", "upgrade")):
            result = _doppel_process(tmp_path, *command, DOPPEL_DATABASE_URL=url)
            _one_line(result, "DOPPEL_DATABASE_URL", *needles)
            assert "secret" not in result[1], "the password was shown"
    assert not (tmp_path / "no").exists(), "a mistyped folder was made"


def test_a_local_model_file_that_is_not_gguf_is_named_at_start_up(tmp_path):
    broken = tmp_path / "broken.gguf"
    broken.write_text("this was never a model\n" * 50, encoding="utf-8")
    _one_line(_doppel_process(tmp_path, "reply", "--text", "hi", DOPPEL_LOCAL_MODEL_PATH=str(broken)),
              "DOPPEL_LOCAL_MODEL_PATH", "broken.gguf", "not a GGUF model")


def _doppel_process(where, *args: str, **env: str) -> tuple[int, str]:
    """`doppel ARGS` in a process of its own, in folder `where`, with only these DOPPEL_ settings."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DOPPEL_")}
    done = subprocess.run([sys.executable, "-m", "bot.cli", *args], cwd=where, capture_output=True, text=True,
                          timeout=120, check=False,
                          env={**clean, "DOPPEL_DATA_DIR": str(where / "var"), "PYTHONPATH": str(ROOT), **env})
    return done.returncode, done.stderr


@pytest.mark.slow
def test_a_malformed_telegram_token_is_one_line(tmp_path, monkeypatch, capsys):
    _one_line(doppel(monkeypatch, capsys, tmp_path, "telegram", DOPPEL_TELEGRAM_TOKEN="not-a-token"),
              "DOPPEL_TELEGRAM_TOKEN", "docs/telegram.md")


def test_a_corrupt_or_read_only_database_is_one_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "doppel.db").write_bytes(b"this is not a database" * 100)
    _one_line(doppel(monkeypatch, capsys, tmp_path, "db", "upgrade"), "database", "DOPPEL_DATABASE_URL")
    # read-only, whoever runs the test (root may write a file without write permission): SQLite's own read-only mode
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    assert doppel(monkeypatch, capsys, fresh, "db", "upgrade")[0] == 0
    url = f"sqlite+aiosqlite:///file:{fresh / 'var' / 'doppel.db'}?mode=ro&uri=true"
    _one_line(doppel(monkeypatch, capsys, fresh, "reply", "--text", "hello", DOPPEL_DATABASE_URL=url), "database", "readonly")


async def test_a_typed_message_past_the_limit_is_refused_before_the_model(services):
    from bot.common.dialogue import Dialogue, Incoming
    from core.errors import TextTooLong

    with pytest.raises(TextTooLong, match="limit is 2000"):
        async for _ in Dialogue(services).reply(Incoming("cli:1", "cli:1", text="word " * 1000), speak=False):
            pass
    from core.types import ConversationKey

    assert await services.history.count(ConversationKey("cli:1", "cli:1")) == 0


@pytest.mark.parametrize("problem", ["token", "intent"])
async def test_discord_refusing_the_login_is_one_startup_error(tmp_path, engines, problem):
    async with FakeDiscord() as fake:
        if problem == "intent":
            fake.gateway.refused_intents = 1 << 15  # Message Content, not enabled in the portal
        settings = Settings(_env_file=None, data_dir=tmp_path / "var", discord_api_url=fake.api_url)
        services = await build_services(settings, engines=engines)
        try:
            with pytest.raises(StartupError) as caught:
                await start(DoppelDiscord(services), fake.token if problem == "intent" else "wrong-token")
        finally:
            await services.close()
    expected = "DOPPEL_DISCORD_TOKEN" if problem == "token" else "Message Content intent"
    assert expected in caught.value.message and "docs/discord.md" in caught.value.message
