"""Typed SQLAlchemy 2 models. Schema changes go through Alembic (migrations/), never create_all in production."""
from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """A moment in UTC, timezone-aware when read on every backend: SQLite keeps no zone and handed back naive
    values, which cannot be compared with PostgreSQL's aware ones (or with `utcnow()`)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class CleanString(TypeDecorator):
    """Text as both backends can keep it: PostgreSQL refuses a NUL character in text ("invalid byte sequence")
    where SQLite stores it, so it is dropped on the way in, on both, and the same message reads back alike."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect) -> str | None:
        return value.replace("\x00", "") if isinstance(value, str) else value


class CleanText(CleanString):
    impl = Text
    cache_ok = True


ID_LENGTH = 64


class ChatKey(CleanString):
    """A user or chat id ("tg:42", "dc:1234", "web:<token>", "cli:<name>"), in at most 64 characters on both backends:
    PostgreSQL refused a longer one ("value too long") where SQLite kept it whole. A longer id (only `--user` on
    the command line makes one today) is kept as its start and a digest of the whole, the same every time, so
    its owner keeps one history; an id of 64 characters or fewer is kept as it is."""

    cache_ok = True

    def __init__(self) -> None:
        super().__init__(ID_LENGTH)

    def process_bind_param(self, value: str | None, dialect) -> str | None:
        return bounded_id(super().process_bind_param(value, dialect))


def bounded_id(value: str | None) -> str | None:
    if value is None or len(value) <= ID_LENGTH:
        return value
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:20]
    return f"{value[:ID_LENGTH - len(digest) - 1]}~{digest}"


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(ChatKey(), primary_key=True)  # "tg:42", "dc:1234", "cli:demo"
    display_name: Mapped[str] = mapped_column(CleanString(200), default="")
    allowed: Mapped[bool] = mapped_column(Boolean, default=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Chat(Base):
    __tablename__ = "chats"

    id: Mapped[str] = mapped_column(ChatKey(), primary_key=True)
    persona: Mapped[str | None] = mapped_column(CleanString(100))
    voice: Mapped[str | None] = mapped_column(CleanString(100))
    avatar: Mapped[str | None] = mapped_column(CleanString(100))
    language: Mapped[str | None] = mapped_column(CleanString(16))
    settings: Mapped[dict] = mapped_column(JSON, default=dict)


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_conversation", "user_id", "chat_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ChatKey(), ForeignKey("users.id", ondelete="CASCADE"))
    chat_id: Mapped[str] = mapped_column(ChatKey())
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(CleanText)
    tokens: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class VoiceRecord(Base):
    __tablename__ = "voices"

    name: Mapped[str] = mapped_column(CleanString(100), primary_key=True)
    engine: Mapped[str] = mapped_column(String(32), default="lite")
    language: Mapped[str] = mapped_column(String(16), default="en")
    ready: Mapped[bool] = mapped_column(Boolean, default=False)
    params: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    clips: Mapped[list["VoiceClip"]] = relationship(back_populates="voice", cascade="all, delete-orphan", order_by="VoiceClip.id")


class VoiceClip(Base):
    __tablename__ = "voice_clips"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    voice_name: Mapped[str] = mapped_column(ForeignKey("voices.name", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(String(500))
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    transcript: Mapped[str] = mapped_column(CleanText, default="")
    transcript_source: Mapped[str] = mapped_column(String(16), default="asr")  # "asr" | "given" | "edited"
    voice: Mapped[VoiceRecord] = relationship(back_populates="clips")


class AvatarRecord(Base):
    __tablename__ = "avatars"

    name: Mapped[str] = mapped_column(CleanString(100), primary_key=True)
    engine: Mapped[str] = mapped_column(String(32), default="lite")
    ready: Mapped[bool] = mapped_column(Boolean, default=False)
    source_path: Mapped[str] = mapped_column(String(500), default="")
    artifact_path: Mapped[str] = mapped_column(String(500), default="")
    params: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class JobRecord(Base):
    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(String(100))
    engine: Mapped[str] = mapped_column(String(32), default="lite")
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    step: Mapped[int] = mapped_column(Integer, default=0)
    max_steps: Mapped[int] = mapped_column(Integer, default=0)
    eta_seconds: Mapped[float | None] = mapped_column(Float)
    gpu: Mapped[int | None] = mapped_column(Integer)
    params: Mapped[dict] = mapped_column(JSON, default=dict)
    checkpoint: Mapped[str] = mapped_column(String(500), default="")
    message: Mapped[str] = mapped_column(CleanText, default="")
    log_tail: Mapped[str] = mapped_column(CleanText, default="")
    notify_chat: Mapped[str | None] = mapped_column(ChatKey())
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    # "host:pid" of the worker running it: a restart requeues only jobs whose worker is gone
    worker: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class HandledUpdate(Base):
    """Platform updates already answered: a restart after a crash answers each message exactly once."""

    __tablename__ = "handled_updates"
    __table_args__ = (UniqueConstraint("platform", "update_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    platform: Mapped[str] = mapped_column(String(16))
    update_id: Mapped[int] = mapped_column(BigInteger)
    handled_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PendingUpdate(Base):
    """A platform update taken in but not answered yet: kept here, it can be acknowledged to the platform at once
    (so the bot can long-poll) and still be answered after a crash."""

    __tablename__ = "pending_updates"
    __table_args__ = (UniqueConstraint("platform", "update_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    platform: Mapped[str] = mapped_column(String(16))
    update_id: Mapped[int] = mapped_column(BigInteger)
    payload: Mapped[dict] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # the bot replica answering it (storage/owners.py), until `lease_until` unless it renews: several replicas
    # share one inbox, and the update of a replica that died mid-answer passes to another when the lease runs out
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
