"""Which replica answers a Discord message, so that each is answered exactly once by one or several bot processes.

A message addressed to the bot goes into the shared inbox (`pending_updates`) claimed by the replica that heard
it, which renews the claim while it answers and records the message as handled when the answer is out. Should
the replica die mid-answer, its claim runs out and another replica's sweep fetches the message by REST and
answers it; a message that reaches two replicas (two processes on one shard during a rolling restart, a
replayed event) is answered by the one holding the claim.
"""
from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager, suppress
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Coroutine

import discord

from bot.common.claims import keep_claim
from storage.owners import replica_id
from storage.updates import HandledUpdates

if TYPE_CHECKING:
    from bot.discord.app import DoppelDiscord

log = logging.getLogger("doppel.discord")


class MessageClaims:
    def __init__(self, handled: HandledUpdates, lease: float) -> None:
        self.handled = handled
        self.lease = lease  # seconds a claim lasts unless renewed; renewed every third of it
        self.holder = replica_id()
        self._answering: dict[int, asyncio.Task] = {}  # in this process: a replayed event is dropped
        self._closing: dict[int, asyncio.Task] = {}  # answered, recording that they are

    @asynccontextmanager
    async def answering(self, message: discord.Message) -> AsyncIterator[bool]:
        """Yields whether this replica answers the message; if so, it is recorded as handled when the block ends,
        even by an error (the error was told to the user), but not when the block is cancelled (a crash)."""
        # each query shielded: a bot stopping mid-answer must not cut one off and strand its database connection
        if (message.id in self._answering or message.id in self._closing
                or await asyncio.shield(self.handled.seen(message.id))):
            yield False
            return
        await asyncio.shield(self.handled.keep(message.id, {"channel_id": message.channel.id, "message_id": message.id},
                                               holder=self.holder, lease=self.lease))
        if not await asyncio.shield(self.handled.claim(message.id, self.holder, self.lease)):
            yield False  # another replica is answering it
            return
        answering = asyncio.current_task()
        assert answering is not None
        self._answering[message.id] = answering
        keeper = asyncio.create_task(keep_claim(self.handled, message.id, self.holder, self.lease, answering))
        try:
            yield True
        except asyncio.CancelledError:
            raise  # left claimed: another replica takes it over when the lease runs out
        except BaseException:
            self._answered(message.id)
            await asyncio.shield(self.handled.mark(message.id))
            raise
        else:
            self._answered(message.id)
            await asyncio.shield(self.handled.mark(message.id))
        finally:
            self._answered(message.id)
            keeper.cancel()
            with suppress(asyncio.CancelledError):
                await keeper
            self._closing.pop(message.id, None)

    def _answered(self, message_id: int) -> None:
        # past this point `abort` lets the task finish (recording the answer) instead of cancelling it
        task = self._answering.pop(message_id, None)
        if task is not None:
            self._closing[message_id] = task

    async def abort(self) -> None:
        """Stop the answers under way, leaving their messages claimed: as after a crash, they are answered again by
        another replica when the claims run out, or at once by this bot's next start on this host."""
        for task in self._answering.values():
            task.cancel()
        await asyncio.gather(*self._answering.values(), *self._closing.values(), return_exceptions=True)

    async def sweep(self, bot: "DoppelDiscord", answer: Callable[[discord.Message], Coroutine[Any, Any, None]]) -> None:
        """Answer the inbox's messages whose replica died mid-answer (their claims ran out), fetched by REST."""
        for payload in await self.handled.due(self.holder, self.lease):
            message_id = int(payload["message_id"])
            try:
                channel = bot.get_channel(int(payload["channel_id"])) or await bot.fetch_channel(int(payload["channel_id"]))
                message = await channel.fetch_message(message_id)  # type: ignore[union-attr]  # a claimed message's channel is a text channel; discord.py's union has others
            except (discord.NotFound, discord.Forbidden):
                log.info("message %s is gone or out of reach; not answering it", message_id)
                await self.handled.mark(message_id)
                continue
            except discord.HTTPException as exc:
                log.warning("could not fetch message %s: %s; the next sweep tries again", message_id, exc)
                await self.handled.release(message_id, self.holder)
                continue
            bot.background(answer(message))

    async def run_sweeps(self, bot: "DoppelDiscord", answer: Callable[[discord.Message], Coroutine[Any, Any, None]],
                         stop: asyncio.Event) -> None:
        """Sweep every third of the lease until `stop` (never cancelled mid-query, which would strand a connection)."""
        while not stop.is_set():
            try:
                await self.sweep(bot, answer)
            except Exception as exc:  # the database is briefly unreachable: the next sweep tries again
                log.warning("could not sweep the message inbox: %s", exc)
            with suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), self.lease / 3)
