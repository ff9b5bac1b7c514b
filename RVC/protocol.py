"""The voice worker's wire protocol, after Wyoming: one JSON header line, then `payload_length` raw bytes.

    {"type": "describe"}                                  → {"type": "info", "data": {...engines...}}
    {"type": "health"}                                    → {"type": "healthy", "data": {...}}
    {"type": "convert", "data": {"id", "engine", "params", "text"?, "rate"?}} + PCM s16le mono (absent for text)
        → {"type": "audio-start", "data": {"id", "rate"}}, {"type": "audio-chunk", ...} + PCM …, {"type": "audio-stop"}
        or {"type": "error", "data": {"id", "code", "message"}}

Requests on one connection are answered in the order they were sent, so a client can send every sentence
of an answer at once and play the first as soon as it is back.
"""
from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import numpy as np

MAX_HEADER = 1 << 16
MAX_PAYLOAD = 64 << 20  # 30 minutes of 16-bit mono at 16 kHz and then some
CHUNK_SAMPLES = 8192  # audio goes back in pieces so a reader can start before the end


class ProtocolError(Exception):
    pass


@dataclass
class Message:
    type: str
    data: dict = field(default_factory=dict)
    payload: bytes = b""


async def read_message(reader: asyncio.StreamReader) -> Message | None:
    """None at a clean end of stream."""
    line = await reader.readline()
    if not line:
        return None
    if len(line) > MAX_HEADER or not line.endswith(b"\n"):
        raise ProtocolError("header line too long or cut off")
    try:
        header = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"bad header: {exc}") from exc
    if not isinstance(header, dict) or not isinstance(header.get("type"), str):
        raise ProtocolError("a header needs a 'type'")
    length = int(header.get("payload_length") or 0)
    if not 0 <= length <= MAX_PAYLOAD:
        raise ProtocolError(f"payload of {length} bytes refused")
    payload = await reader.readexactly(length) if length else b""
    return Message(header["type"], header.get("data") or {}, payload)


def encode_message(message: Message) -> bytes:
    header: dict[str, Any] = {"type": message.type, "data": message.data}
    if message.payload:
        header["payload_length"] = len(message.payload)
    return json.dumps(header, separators=(",", ":")).encode() + b"\n" + message.payload


async def write_message(writer: asyncio.StreamWriter, message: Message) -> None:
    writer.write(encode_message(message))
    await writer.drain()


async def serve_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                           answer: Callable[[Message, asyncio.StreamWriter], Awaitable[None]]) -> None:
    """One client's requests, answered in order until it hangs up; a malformed one ends the connection with an error."""
    try:
        while True:
            try:
                message = await read_message(reader)
            except ProtocolError as exc:
                await write_message(writer, Message("error", {"code": "protocol", "message": str(exc)}))
                break
            if message is None:
                break
            await answer(message, writer)
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


def pcm_from_float(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()


def float_from_pcm(payload: bytes) -> np.ndarray:
    if len(payload) % 2:
        raise ProtocolError("PCM payload has an odd number of bytes")
    return np.frombuffer(payload, dtype="<i2").astype(np.float32) / 32767
