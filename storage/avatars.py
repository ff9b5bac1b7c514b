"""Avatars: which engine draws each, whether it is ready, and where its trained files are."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.errors import UnknownAvatar
from storage.models import AvatarRecord


@dataclass(frozen=True)
class Avatar:
    name: str
    engine: str  # "photo" | "lite" | "geneface"
    ready: bool
    source_path: str
    artifact_path: str
    params: dict


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

    async def set_ready(self, name: str, artifact_path: str, params: dict | None = None) -> Avatar:
        async with self.sessions.begin() as session:
            rec = await session.get(AvatarRecord, name)
            if rec is None:
                raise UnknownAvatar(f"There is no avatar called '{name}'.")
            rec.ready, rec.artifact_path = True, artifact_path
            if params:
                rec.params = {**(rec.params or {}), **params}
            await session.flush()
            return _to_avatar(rec)

    async def delete(self, name: str) -> None:
        async with self.sessions.begin() as session:
            rec = await session.get(AvatarRecord, name)
            if rec is None:
                raise UnknownAvatar(f"There is no avatar called '{name}'.")
            await session.delete(rec)
