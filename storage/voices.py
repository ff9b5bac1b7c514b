"""Voices and their reference clips."""
from __future__ import annotations

import builtins
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from core.errors import UnknownVoice
from core.types import Voice, VoiceEngine
from storage.models import Chat, VoiceClip, VoiceRecord
from storage.rows import locked
from storage.versions import add_version, moved_paths, pick_version


@dataclass(frozen=True)
class ClipInfo:
    id: int
    path: str
    seconds: float
    transcript: str
    transcript_source: str


def _to_voice(rec: VoiceRecord) -> Voice:
    return Voice(name=rec.name, engine=VoiceEngine(rec.engine), language=rec.language, ready=rec.ready, params=dict(rec.params or {}))


class VoiceRepository:
    """Implements core.ports.VoiceCatalog, plus the admin operations."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def get(self, name: str) -> Voice:
        async with self.sessions() as session:
            rec = await session.get(VoiceRecord, name)
            if rec is None:
                raise UnknownVoice(name)
            return _to_voice(rec)

    async def names(self) -> builtins.list[str]:
        async with self.sessions() as session:
            return list((await session.scalars(select(VoiceRecord.name).order_by(VoiceRecord.name))).all())

    async def list(self) -> builtins.list[Voice]:
        async with self.sessions() as session:
            return [_to_voice(r) for r in (await session.scalars(select(VoiceRecord).order_by(VoiceRecord.name))).all()]

    async def upsert(self, name: str, engine: VoiceEngine, language: str = "en", *, ready: bool, params: dict | None = None) -> Voice:
        async with self.sessions.begin() as session:
            rec = await session.get(VoiceRecord, name)
            if rec is None:
                rec = VoiceRecord(name=name)
                session.add(rec)
            rec.engine, rec.language, rec.ready = engine.value, language, ready
            rec.params = dict(params or {})
            await session.flush()
            return _to_voice(rec)

    async def create_missing(self, name: str, engine: VoiceEngine, language: str = "en", *, ready: bool,
                             params: dict | None = None) -> None:
        """A new voice's record, unless it exists: made by another admin's add a moment ago, it is kept as it is."""
        try:
            async with self.sessions.begin() as session:
                if await session.get(VoiceRecord, name) is None:
                    session.add(VoiceRecord(name=name, engine=engine.value, language=language, ready=ready,
                                            params=dict(params or {})))
        except IntegrityError:
            if await self._missing(name):
                raise

    async def _missing(self, name: str) -> bool:
        async with self.sessions() as session:
            return await session.get(VoiceRecord, name) is None

    async def add_clip(self, name: str, path: str, seconds: float, transcript: str, source: str) -> ClipInfo:
        async with self.sessions.begin() as session:
            if await session.get(VoiceRecord, name) is None:
                raise UnknownVoice(name)
            clip = VoiceClip(voice_name=name, path=path, seconds=seconds, transcript=transcript, transcript_source=source)
            session.add(clip)
            await session.flush()
            return ClipInfo(clip.id, path, seconds, transcript, source)

    async def clips(self, name: str) -> builtins.list[ClipInfo]:
        async with self.sessions() as session:
            rec = await session.scalar(select(VoiceRecord).where(VoiceRecord.name == name).options(selectinload(VoiceRecord.clips)))
            if rec is None:
                raise UnknownVoice(name)
            return [ClipInfo(c.id, c.path, c.seconds, c.transcript, c.transcript_source) for c in rec.clips]

    async def edit_transcript(self, clip_id: int, text: str) -> ClipInfo:
        async with self.sessions.begin() as session:
            clip = await session.get(VoiceClip, clip_id)
            if clip is None:
                raise UnknownVoice(str(clip_id))
            clip.transcript, clip.transcript_source = text, "edited"
            return ClipInfo(clip.id, clip.path, clip.seconds, clip.transcript, clip.transcript_source)

    async def set_ready(self, name: str, ready: bool, params: dict | None = None) -> None:
        async with self.sessions.begin() as session:
            rec = await locked(session, VoiceRecord, name)
            if rec is None:
                raise UnknownVoice(name)
            rec.ready = ready
            if params is not None:
                rec.params = {**(rec.params or {}), **params}

    async def update_params(self, name: str, params: dict) -> None:
        async with self.sessions.begin() as session:
            rec = await locked(session, VoiceRecord, name)
            if rec is None:
                raise UnknownVoice(name)
            rec.params = {**(rec.params or {}), **params}

    async def add_version(self, name: str, artifact: str, info: dict | None = None, number: int | None = None) -> int:
        """A trained artifact becomes the voice's next version and serves from now on; returns its number."""
        async with self.sessions.begin() as session:
            rec = await locked(session, VoiceRecord, name)
            if rec is None:
                raise UnknownVoice(name)
            rec.params, number = add_version(rec.params or {}, "artifact", artifact, info or {}, number)
            rec.ready = True
            return number

    async def restore(self, name: str, version: int) -> Voice:
        """Serve an earlier (or later) kept version again."""
        async with self.sessions.begin() as session:
            rec = await locked(session, VoiceRecord, name)
            if rec is None:
                raise UnknownVoice(name)
            rec.params = pick_version(rec.params or {}, "artifact", version)
            rec.ready = True
            return _to_voice(rec)

    async def rename(self, old: str, new: str, old_dir: str, new_dir: str) -> Voice:
        """The record, its clips and every chat that chose it move to the new name; paths under `old_dir` follow the folder."""
        async with self.sessions.begin() as session:
            rec = await session.scalar(select(VoiceRecord).where(VoiceRecord.name == old).options(selectinload(VoiceRecord.clips)))
            if rec is None:
                raise UnknownVoice(old)
            moved = VoiceRecord(name=new, engine=rec.engine, language=rec.language, ready=rec.ready,
                                params=moved_paths(rec.params or {}, old_dir, new_dir), created_at=rec.created_at)
            session.add(moved)
            await session.flush()
            for clip in rec.clips:
                session.add(VoiceClip(voice_name=new, path=moved_paths(clip.path, old_dir, new_dir), seconds=clip.seconds,
                                      transcript=clip.transcript, transcript_source=clip.transcript_source))
            await session.delete(rec)
            await session.execute(update(Chat).where(Chat.voice == old).values(voice=new))
            await session.flush()
            return _to_voice(moved)

    async def delete(self, name: str) -> None:
        """The record and its clips; chats that chose it fall back to their persona's voice."""
        async with self.sessions.begin() as session:
            rec = await session.get(VoiceRecord, name)
            if rec is None:
                raise UnknownVoice(name)
            await session.delete(rec)
            await session.execute(update(Chat).where(Chat.voice == name).values(voice=None))
