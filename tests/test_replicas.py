"""Bot replicas sharing one PostgreSQL database: every message is answered exactly once, also when a message reaches
two replicas and when a replica dies in the middle of an answer.

Each replica is a bot of its own (its own services, sessions, HTTP server and claims), as a separate process
would be; they share the engines only to spare the test loading the models twice.
"""
from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import select

from bot.telegram.app import TelegramBot
from bot.telegram.webhook import SECRET_HEADER, webhook_secret
from bot.wiring import Services, build_services
from core.types import ConversationKey
from storage.models import PendingUpdate
from tests.fakes.round_robin import RoundRobin
from tests.postgres import postgres  # noqa: F401 - a pytest fixture, requested by name
from tests.telegram_support import bot_settings, fake_tg, texts_to  # noqa: F401 - a pytest fixture, requested by name

pytestmark = pytest.mark.slow
HOOK = "/telegram/hook"
LEASE = 6.0  # seconds; renewed every 2 s, so a replica that stops renewing is taken for dead after at most 6 s


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Replica:
    app: TelegramBot
    services: Services
    task: asyncio.Task
    port: int

    async def kill(self) -> None:
        """As far as updates go, a crash: the run is cancelled mid-answer and nothing is handed back."""
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)

    async def stop(self) -> None:
        if not self.task.done():
            self.app.stop()
            await asyncio.wait_for(asyncio.gather(self.task, return_exceptions=True), 60)
        await self.services.close()


async def _until(predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"not true after {timeout:.0f} s"
        await asyncio.sleep(0.05)


async def _start_replicas(tmp_path: Path, fake, engines, database_url: str, count: int) -> tuple[list[Replica], RoundRobin]:
    ports = [_free_port() for _ in range(count)]
    balancer = RoundRobin([f"http://127.0.0.1:{p}" for p in ports])
    url = await balancer.start() + HOOK
    replicas = []
    for i, port in enumerate(ports):
        folder = tmp_path / f"replica{i}"
        folder.mkdir()
        settings = bot_settings(folder, fake, database_url=database_url, telegram_webhook_url=url,
                                telegram_webhook_port=port, replica_lease_seconds=LEASE)
        services = await build_services(settings, engines=engines)
        app = TelegramBot(services)
        replicas.append(Replica(app, services, asyncio.create_task(app.run()), port))
    await fake.wait_for(lambda: fake.webhook is not None and len(fake.called("setWebhook")) >= count, 60)
    return replicas, balancer


async def test_webhook_replicas_answer_each_update_once_even_when_one_dies_mid_answer(fake_tg, tmp_path, engines, postgres):
    database_url = await postgres.fresh_database()
    replicas, balancer = await _start_replicas(tmp_path, fake_tg, engines, database_url, 2)
    try:
        # Telegram posting each update again while it is being answered, and the repeat landing on the other replica
        users = [701, 702, 703, 704]
        updates = [fake_tg.text_update(u, "/help") for u in users]
        secret = webhook_secret(replicas[0].services.settings)
        async with aiohttp.ClientSession() as http:
            async def post(port: int, update: dict) -> int:
                async with http.post(f"http://127.0.0.1:{port}{HOOK}", json=update, headers={SECRET_HEADER: secret}) as r:
                    return r.status
            statuses = await asyncio.gather(*(post(r.port, u) for u in updates for r in replicas))
        assert set(statuses) == {200}
        await fake_tg.wait_for(lambda: all(texts_to(fake_tg, u) for u in users), 60)
        await fake_tg.wait_for(lambda: not fake_tg.updates, 30)
        assert len({*balancer.sent_to}) == 2  # the balancer spread Telegram's posts over both
        await asyncio.sleep(1.0)
        assert [len(texts_to(fake_tg, u)) for u in users] == [1, 1, 1, 1]

        # a replica dies while its answer is on the way: the other one answers, once, after the lease runs out
        user = 705
        gate = fake_tg.hold("sendMessage")
        update = fake_tg.text_update(user, "Tell me something nice about the sea.")
        # a held call is recorded on arrival but wakes no waiter, so this one is polled
        await _until(lambda: [p for p in fake_tg.called("sendMessage") if str(p.get("chat_id")) == str(user)], 120)
        async with replicas[0].services.sessions() as session:
            holder = await session.scalar(select(PendingUpdate.claimed_by).where(PendingUpdate.update_id == update["update_id"]))
        (victim,) = [r for r in replicas if r.app.delivery.holder == holder]
        (survivor,) = [r for r in replicas if r is not victim]
        await victim.kill()
        killed = time.monotonic()
        fake_tg.release("sendMessage", deliver=False)  # what the dead replica was sending never arrived
        assert not gate.deliver and not texts_to(fake_tg, user)

        await fake_tg.wait_for(lambda: texts_to(fake_tg, user), 120)
        taken_over = time.monotonic() - killed
        # and the survivor alone goes on answering what the balancer now sends only to it
        fake_tg.text_update(706, "/help")
        await fake_tg.wait_for(lambda: texts_to(fake_tg, 706), 60)
        await asyncio.sleep(1.0)
        assert len(texts_to(fake_tg, user)) == 1 and len(texts_to(fake_tg, 706)) == 1
        assert await survivor.services.history.count(ConversationKey(f"tg:{user}", f"tg:{user}")) == 2
        async with survivor.services.sessions() as session:
            assert (await session.scalars(select(PendingUpdate))).all() == []
        print(f"the survivor answered {taken_over:.1f} s after the kill (lease {LEASE:.0f} s)")
        assert taken_over < 60
    finally:
        fake_tg.release("sendMessage")
        for replica in replicas:
            await replica.stop()
        await balancer.stop()


async def test_discord_shards_answer_each_message_once_even_when_one_dies_mid_answer(tmp_path, engines, postgres):
    from adapters.settings import Settings
    from bot.discord.app import DoppelDiscord
    from tests.fakes.discord_api import FakeDiscord
    from tests.fakes.discord_bot import BRIEF
    from tests.fakes.discord_gateway import shard_of

    database_url = await postgres.fresh_database()
    personas = tmp_path / "personas"
    personas.mkdir()
    (personas / "brief.toml").write_text(BRIEF, encoding="utf-8")
    async with FakeDiscord() as fake:
        alice = fake.add_user("alice")
        servers: dict[int, tuple[int, int]] = {}  # shard → (guild, channel): a server on each shard
        while len(servers) < 2:
            guild = fake.add_guild(f"server {len(servers)}", alice)
            if shard_of(guild, 2) not in servers:
                servers[shard_of(guild, 2)] = (guild, fake.add_text_channel(guild, "general"))
                fake.join(guild, alice)
            await asyncio.sleep(0.002)  # the next snowflake's millisecond, which picks its shard
        bots, runners = [], []
        for shard in (0, 1):
            settings = Settings(_env_file=None, data_dir=tmp_path / f"replica{shard}", personas_dir=personas, persona="brief",
                                discord_api_url=fake.api_url, database_url=database_url, discord_shard_count=2,
                                discord_shard_id=shard, replica_lease_seconds=LEASE)
            bot = DoppelDiscord(await build_services(settings, engines=engines))
            bots.append(bot)
            runners.append(asyncio.create_task(bot.start(fake.token)))
        try:
            await asyncio.wait_for(asyncio.gather(*(b.wait_until_ready() for b in bots)), 60)
            # each replica hears its own shard's server only
            for shard, bot in enumerate(bots):
                heard = {g.id for g in bot.guilds}
                assert servers[shard][0] in heard and {shard_of(g, 2) for g in heard} == {shard}
            bot_user = fake.bot
            for _guild, channel in servers.values():
                await fake.send_message(channel, alice, f"<@{bot_user['id']}> What colour is grass?", mentions=[bot_user])
            for _guild, channel in servers.values():
                await fake.wait_for(lambda m, c=channel: m.by_bot and m.channel_id == c, 120)

            # a direct message, and a slash command, that reach both replicas (two processes on one shard during a
            # rolling restart): each is answered by one of them
            dm = fake.dm_channel(alice)
            await fake.send_message(dm, alice, "Is the sea blue?", everywhere=True)
            await fake.wait_for(lambda m: m.by_bot and m.channel_id == dm, 120)
            await fake.invoke("help", alice, servers[0][1], everywhere=True)
            await fake.wait_for(lambda m: m.by_bot and m.payload.get("interaction_metadata"), 60)
            await asyncio.sleep(1.5)
            answers = [[m for m in fake.bot_messages(c) if not m.payload.get("interaction_metadata")] for _, c in servers.values()]
            assert [len(a) for a in answers] == [1, 1]
            assert len(fake.bot_messages(dm)) == 1
            assert len([m for m in fake.bot_messages(servers[0][1]) if m.payload.get("interaction_metadata")]) == 1
            assert not fake.errors

            # the replica of server 0's shard dies while it answers (its typing call is held): the other one answers
            victim, survivor = bots
            typing = ("POST", f"/api/v10/channels/{servers[0][1]}/typing")
            typed = fake.requests.count(typing)
            fake.hold("POST", f"/channels/{servers[0][1]}/typing")
            question = await fake.send_message(servers[0][1], alice, f"<@{bot_user['id']}> Tell me something nice about the sea.",
                                               mentions=[bot_user])
            await _until(lambda: fake.requests.count(typing) > typed, 120)
            # as far as the message goes, a crash: its answer is cancelled where it stands, the client goes, nothing
            # is handed back
            await victim.close()
            killed = time.monotonic()
            fake.release("POST", f"/channels/{servers[0][1]}/typing")
            replied = lambda m: m.by_bot and (m.payload.get("message_reference") or {}).get("message_id") == str(question.id)
            await fake.wait_for(replied, 120)
            taken_over = time.monotonic() - killed
            await asyncio.sleep(1.0)
            assert len([m for m in fake.bot_messages(servers[0][1]) if replied(m)]) == 1
            assert await survivor.services.history.count(ConversationKey(f"dc:{alice['id']}", f"dc:{servers[0][0]}")) == 4
            print(f"the surviving shard answered {taken_over:.1f} s after the kill (lease {LEASE:.0f} s)")
        finally:
            for bot in bots:
                await bot.close()
            await asyncio.gather(*runners, return_exceptions=True)
            for bot in bots:
                await bot.services.close()
