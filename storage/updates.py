"""A platform's updates: the inbox of those taken in and not answered yet, who is answering each, and the ids
already answered, so neither a crash nor several bot replicas sharing one database lose or repeat an answer."""
from __future__ import annotations

from datetime import datetime, timedelta, UTC

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.history import insert_missing
from storage.models import HandledUpdate, PendingUpdate
from storage.owners import alive
from storage.rows import rowcount


def _now() -> datetime:
    return datetime.now(UTC)


def _free(claimed_by: str | None, lease_until: datetime | None, holder: str) -> bool:
    if claimed_by is None or claimed_by == holder:
        return True
    return lease_until is None or lease_until <= _now() or not alive(claimed_by)


def _is(column, value):
    return column.is_(None) if value is None else column == value


class HandledUpdates:
    """Platform update ids already answered, and the inbox of those not answered yet.

    Claims: a replica answering an update holds it (`claim`) for `lease` seconds and renews the claim while it
    works (`renew`); another replica takes it over only once the lease has run out, or at once when the holder
    ran on the same host and its process is gone. `due` hands a replica the inbox's updates nobody holds.
    """

    # Telegram hands out an unanswered update for 24 hours and a Discord RESUME replays minutes: a week is ample
    KEEP = timedelta(days=7)
    PRUNE_EVERY = 500  # marks between two clean-ups

    def __init__(self, sessions: async_sessionmaker[AsyncSession], platform: str) -> None:
        self.sessions = sessions
        self.platform = platform
        self._marks = 0

    def _pending(self, *update_ids: int):
        where = PendingUpdate.platform == self.platform
        if update_ids:
            where = and_(where, PendingUpdate.update_id.in_(update_ids))
        return where

    async def seen(self, update_id: int) -> bool:
        async with self.sessions() as session:
            count = await session.scalar(
                select(func.count()).select_from(HandledUpdate)
                .where(HandledUpdate.platform == self.platform, HandledUpdate.update_id == update_id)
            )
            return bool(count)

    async def keep(self, update_id: int, payload: dict, *, holder: str | None = None, lease: float = 0.0) -> None:
        """Take an update in before acknowledging it to the platform; `pending` and `due` hand it back until it is
        marked. With `holder`, it is taken in already claimed by that replica for `lease` seconds."""
        claim = {"claimed_by": holder, "lease_until": _now() + timedelta(seconds=lease)} if holder else {}
        async with self.sessions.begin() as session:
            await insert_missing(session, PendingUpdate, platform=self.platform, update_id=update_id, payload=payload,
                                 **claim)

    async def pending(self) -> list[dict]:
        """The payloads of updates taken in and not yet answered, oldest first."""
        async with self.sessions() as session:
            rows = await session.scalars(select(PendingUpdate).where(self._pending()).order_by(PendingUpdate.update_id))
            return [row.payload for row in rows]

    async def claim(self, update_id: int, holder: str, lease: float) -> bool:
        """Whether `holder` now holds this update for `lease` seconds: it was free, held by `holder` already, its
        lease ran out, or its holder is gone. False also when the update is no longer in the inbox."""
        async with self.sessions.begin() as session:
            row = (await session.execute(select(PendingUpdate.update_id, PendingUpdate.claimed_by, PendingUpdate.lease_until)
                                         .where(self._pending(update_id)))).first()
            return row is not None and await self._take(session, row, holder, lease)

    async def due(self, holder: str, lease: float, limit: int = 20) -> list[dict]:
        """Claim for `holder` the inbox's updates that nobody holds (oldest first); their payloads.

        On PostgreSQL the rows another replica is looking at this moment are skipped (FOR UPDATE SKIP LOCKED)
        rather than waited for; on SQLite the compare-and-set in `_take` alone keeps two replicas apart.
        """
        async with self.sessions.begin() as session:
            rows = (await session.execute(
                select(PendingUpdate.update_id, PendingUpdate.claimed_by, PendingUpdate.lease_until)
                .where(self._pending(), or_(PendingUpdate.claimed_by.is_(None), PendingUpdate.claimed_by != holder))
                .order_by(PendingUpdate.update_id).limit(limit)
                .with_for_update(skip_locked=True))).all()
            taken = [row.update_id for row in rows if await self._take(session, row, holder, lease)]
            if not taken:
                return []
            found = await session.scalars(select(PendingUpdate.payload).where(self._pending(*taken))
                                          .order_by(PendingUpdate.update_id))
            return list(found)

    async def _take(self, session: AsyncSession, row, holder: str, lease: float) -> bool:
        if not _free(row.claimed_by, row.lease_until, holder):
            return False
        # compare-and-set on the claim that was read: of two replicas taking it at once, the second changes nothing
        result = await session.execute(
            update(PendingUpdate).where(self._pending(row.update_id), _is(PendingUpdate.claimed_by, row.claimed_by),
                                        _is(PendingUpdate.lease_until, row.lease_until))
            .values(claimed_by=holder, lease_until=_now() + timedelta(seconds=lease))
            .execution_options(synchronize_session=False))
        return rowcount(result) == 1

    async def renew(self, update_id: int, holder: str, lease: float) -> bool:
        """Extend `holder`'s claim; False if it holds the update no more (another replica took it over, or it is done)."""
        async with self.sessions.begin() as session:
            result = await session.execute(
                update(PendingUpdate).where(self._pending(update_id), PendingUpdate.claimed_by == holder)
                .values(lease_until=_now() + timedelta(seconds=lease)).execution_options(synchronize_session=False))
            return rowcount(result) == 1

    async def release(self, update_id: int, holder: str) -> None:
        """Give a claim up (its answer failed for a passing reason): the next `due`, here or on another replica, retries it."""
        async with self.sessions.begin() as session:
            await session.execute(
                update(PendingUpdate).where(self._pending(update_id), PendingUpdate.claimed_by == holder)
                .values(claimed_by=None, lease_until=None).execution_options(synchronize_session=False))

    async def discard(self, update_id: int) -> None:
        """Drop an update from the inbox without answering it: it was answered before (a repeated delivery)."""
        async with self.sessions.begin() as session:
            await session.execute(delete(PendingUpdate).where(self._pending(update_id)))

    async def mark(self, update_id: int) -> bool:
        """True if this call recorded it, False if it was already there."""
        try:
            async with self.sessions.begin() as session:
                await session.execute(delete(PendingUpdate).where(self._pending(update_id)))
                session.add(HandledUpdate(platform=self.platform, update_id=update_id))
        except IntegrityError:
            await self.discard(update_id)
            return False
        self._marks += 1
        if self._marks % self.PRUNE_EVERY == 0:
            await self.prune()
        return True

    async def prune(self, keep: timedelta | None = None) -> int:
        """Forget ids older than `keep`; the platform will never hand those updates out again."""
        cutoff = _now() - (self.KEEP if keep is None else keep)
        async with self.sessions.begin() as session:
            result = await session.execute(
                delete(HandledUpdate).where(HandledUpdate.platform == self.platform, HandledUpdate.handled_at < cutoff))
            return rowcount(result) or 0

    async def last(self) -> int | None:
        async with self.sessions() as session:
            return await session.scalar(select(func.max(HandledUpdate.update_id)).where(HandledUpdate.platform == self.platform))
