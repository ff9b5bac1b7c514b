"""What crosses between a bot and the replicas besides numpy audio: the settings, and errors from our own family."""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import core.errors
from core.errors import DoppelError, EngineError

if TYPE_CHECKING:
    from adapters.settings import Settings


def settings_values(settings: Settings) -> dict[str, Any]:
    """The bot's settings as the replicas get them. Relative paths are made absolute here, where they were meant:
    on a cluster they must name folders every node reads (a shared file system), like the voice models'."""
    values: dict[str, Any] = settings.model_dump()
    for key, value in values.items():
        if isinstance(value, Path) and not value.is_absolute():
            values[key] = value.resolve()
    return values


def replica_settings(values: dict[str, Any]) -> Settings:
    from adapters.settings import Settings

    return Settings(_env_file=None, **values)


class CarriedError(Exception):
    """A DoppelError on its way out of a replica: our errors take keyword arguments that plain exception pickling
    loses (AudioTooLong(seconds, limit)), so the class name, message and attributes travel instead."""

    def __init__(self, name: str, message: str, state: dict[str, Any]) -> None:
        super().__init__(name, message, state)
        self.name, self.message, self.state = name, message, state


def carry(exc: BaseException) -> BaseException:
    """Raise the result in a replica: our own errors in a form that survives the trip, others as they are."""
    if isinstance(exc, DoppelError) and getattr(core.errors, type(exc).__name__, None) is type(exc):
        state = {k: v for k, v in vars(exc).items() if isinstance(v, (str, int, float, bool, type(None)))}
        return CarriedError(type(exc).__name__, exc.message, state)
    return exc


def arrived(exc: BaseException) -> DoppelError:
    """Any failure of a remote call as the error the pipeline knows: the replica's own, rebuilt, or an EngineError."""
    cause = getattr(exc, "cause", None) or exc  # Ray wraps what the replica raised in a RayTaskError
    if isinstance(cause, CarriedError):
        cls = getattr(importlib.import_module("core.errors"), cause.name, None)
        if isinstance(cls, type) and issubclass(cls, DoppelError):
            rebuilt = cls.__new__(cls)
            Exception.__init__(rebuilt, cause.message)
            vars(rebuilt).update(cause.state)
            return rebuilt
    if isinstance(cause, DoppelError):
        return cause
    return EngineError(detail=f"ray: {type(cause).__name__}: {str(cause)[:500]}")
