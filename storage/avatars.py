"""Avatars: which engine draws each, whether it is ready, and where its trained files are."""
from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.errors import UnknownAvatar
from core.types import Avatar
from storage.models import AvatarRecord, Chat
from storage.rows import locked
from storage.versions import add_version, moved_paths, pick_version


def _to_avatar(rec: AvatarRecord) -> Avatar:
    return Avatar(rec.name, rec.engine, rec.ready, rec.source_path, rec.artifact_path, dict(rec.params or {}))


class AvatarRepository:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def get(self, name: str) -> Avatar:
        async with self.sessions() as session:
            rec = await session.get(AvatarRecord, name)
            if rec is None:
                raise UnknownAvatar(f"There is no avatar called '{name}'.")
            return _to_avatar(rec)

    async def find(self, name: str) -> Avatar | None:
        async with self.sessions() as session:
            rec = await session.get(AvatarRecord, name)
            return _to_avatar(rec) if rec else None

    async def list(self) -> list[Avatar]:
        async with self.sessions() as session:
            return [_to_avatar(r) for r in (await session.scalars(select(AvatarRecord).order_by(AvatarRecord.name))).all()]

    async def upsert(self, name: str, engine: str, *, ready: bool, source_path: str = "", artifact_path: str = "",
                     params: dict | None = None) -> Avatar:
        async with self.sessions.begin() as session:
            rec = await session.get(AvatarRecord, name)
            if rec is None:
                rec = AvatarRecord(name=name)
                session.add(rec)
            rec.engine, rec.ready, rec.source_path, rec.artifact_path = engine, ready, source_path, artifact_path
            rec.params = dict(params or {})
            await session.flush()
            return _to_avatar(rec)

    async def new_source(self, name: str, engine: str, source_path: str, params: dict) -> Avatar:
        """A video to train on: a new avatar waits for its training; one that is ready keeps drawing meanwhile."""
        async with self.sessions.begin() as session:
            rec = await locked(session, AvatarRecord, name)
            if rec is None:
                rec = AvatarRecord(name=name, engine=engine, ready=False, artifact_path="", params={})
                session.add(rec)
            rec.source_path = source_path
            rec.params = {**(rec.params or {}), **params}
            await session.flush()
            return _to_avatar(rec)

    async def add_version(self, name: str, artifact_path: str, info: dict | None = None, number: int | None = None,
                          engine: str | None = None) -> int:
        """A trained artifact becomes the avatar's next version and draws from now on; returns its number."""
        async with self.sessions.begin() as session:
            rec = await self._get(session, name)
            info = {**(info or {}), "engine": engine or rec.engine}
            rec.params, number = add_version(rec.params or {}, "artifact_path", artifact_path, info, number)
            rec.ready, rec.artifact_path, rec.engine = True, artifact_path, info["engine"]
            return number

    async def restore(self, name: str, version: int) -> Avatar:
        async with self.sessions.begin() as session:
            rec = await self._get(session, name)
            rec.params = pick_version(rec.params or {}, "artifact_path", version)
            rec.ready, rec.artifact_path = True, rec.params["artifact_path"]
            rec.engine = rec.params.get("engine") or rec.engine
            return _to_avatar(rec)

    async def rename(self, old: str, new: str, old_dir: str, new_dir: str) -> Avatar:
        async with self.sessions.begin() as session:
            rec = await self._get(session, old)
            moved = AvatarRecord(name=new, engine=rec.engine, ready=rec.ready,
                                 source_path=moved_paths(rec.source_path, old_dir, new_dir),
                                 artifact_path=moved_paths(rec.artifact_path, old_dir, new_dir),
                                 params=moved_paths(rec.params or {}, old_dir, new_dir), created_at=rec.created_at)
            await session.delete(rec)
            await session.flush()
            session.add(moved)
            await session.execute(update(Chat).where(Chat.avatar == old).values(avatar=new))
            await session.flush()
            return _to_avatar(moved)

    async def delete(self, name: str) -> None:
        """The record; chats that chose it answer without a face."""
        async with self.sessions.begin() as session:
            await session.delete(await self._get(session, name))
            await session.execute(update(Chat).where(Chat.avatar == name).values(avatar=None))

    @staticmethod
    async def _get(session: AsyncSession, name: str) -> AvatarRecord:
        rec = await locked(session, AvatarRecord, name)
        if rec is None:
            raise UnknownAvatar(f"There is no avatar called '{name}'.")
        return rec
