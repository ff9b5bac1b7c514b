"""The Discord bot, as `doppel discord` runs it, started against a FakeDiscord for a test."""
from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator

from adapters.engines import Engines
from adapters.settings import Settings
from bot.discord.app import DoppelDiscord
from bot.wiring import Services, build_services
from tests.fakes.discord_api import FakeDiscord

# a persona that answers in one short sentence, so tests spend little CPU on the language model
BRIEF = '''name = "brief"
language = "en"
max_sentences = 1
max_tokens = 40
system_prompt = "You are a friendly person. Answer in one short, simple sentence."
'''


@dataclass
class World:
    fake: FakeDiscord
    bot: DoppelDiscord
    services: Services
    admin: dict
    alice: dict
    guild: int
    channel: int


@asynccontextmanager
async def discord_world(tmp_path: Path, engines: Engines, **overrides) -> AsyncIterator[World]:
    personas = tmp_path / "personas"
    personas.mkdir(exist_ok=True)
    (personas / "brief.toml").write_text(BRIEF, encoding="utf-8")
    async with FakeDiscord() as fake:
        admin, alice = fake.add_user("admin"), fake.add_user("alice")
        guild = fake.add_guild("test server", admin)
        channel = fake.add_text_channel(guild, "general")
        fake.join(guild, admin)
        fake.join(guild, alice)
        values = {"data_dir": tmp_path / "var", "personas_dir": personas, "persona": "brief",
                  "discord_api_url": fake.api_url, "admin_ids": [int(admin["id"])], "discord_progress_interval": 0.2,
                  **overrides}
        services = await build_services(Settings(_env_file=None, **values), engines=engines)
        bot = DoppelDiscord(services)
        runner = asyncio.create_task(bot.start(fake.token))
        try:
            await asyncio.wait_for(bot.wait_until_ready(), 30)
            yield World(fake, bot, services, admin, alice, guild, channel)
        finally:
            await bot.close()
            await asyncio.gather(runner, return_exceptions=True)
            await services.close()
