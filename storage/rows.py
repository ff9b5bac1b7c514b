"""Reading a row to change it, safely while other requests, replicas or workers change it too."""
from __future__ import annotations

from typing import Any, TypeVar, cast

from sqlalchemy import CursorResult, Result, inspect, update
from sqlalchemy.ext.asyncio import AsyncSession

T = TypeVar("T")


async def locked(session: AsyncSession, model: type[T], key: object) -> T | None:
    """The row with primary key `key`, read fresh and locked until the transaction ends (None if there is none).

    Settings and params are JSON values changed by read-merge-write: without the lock, two changes made at
    once each write back what they read, and one of them is lost. PostgreSQL locks the row (FOR UPDATE);
    SQLite has no row locks, so a write that changes nothing takes the database's write lock first (a
    transaction that has read nothing yet cannot hold a stale snapshot, so the read that follows is current).
    """
    if session.get_bind().dialect.name == "sqlite":
        column = inspect(model).primary_key[0]
        await session.execute(update(model).where(column == key).values({column.key: column})
                              .execution_options(synchronize_session=False))
    return await session.get(model, key, with_for_update=True, populate_existing=True)


def rowcount(result: Result[Any]) -> int:
    """Rows an UPDATE or DELETE touched: its result is a CursorResult, which session.execute is typed not to say."""
    return cast(CursorResult[Any], result).rowcount
