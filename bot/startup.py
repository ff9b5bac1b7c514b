"""Settings checked before anything starts, so a mistake is one line naming the setting, not a traceback.

`StartupError` is the one error for this (in core/errors.py: deploy/ raises it too); `bot/cli.py` prints it and
exits. A new check goes in `check_settings` (or raises StartupError where the problem shows, like a token the
platform rejects).
"""
from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from core.errors import DoppelError, StartupError

PROVIDERS = ("local", "openai", "zhipu", "gemini")
VOICE_WORKERS = ("inprocess", "subprocess", "docker")
JOB_RUNNERS = ("local", "ray")
ENGINE_PLACES = ("local", "ray")


def setting_name(field: str) -> str:
    return "DOPPEL_" + field.upper()


def from_validation(exc) -> StartupError:
    """A pydantic ValidationError of Settings (a value that does not parse) as one line."""
    first = exc.errors()[0]
    field = str(first["loc"][0]) if first.get("loc") else "?"
    value = first.get("input")
    shown = f" '{value}'" if isinstance(value, (str, int, float)) else ""
    reason = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    doc = "docs/telegram.md" if field in ("admin_ids", "allowed_ids") else "README.md"
    return StartupError(f"the value{shown} is not valid: {reason}", setting=setting_name(field), doc=doc)


def check_settings(settings) -> None:
    """What can be known wrong from the settings alone, before any model loads or any network call."""
    check_database(settings)
    entries = [(settings.llm_provider, settings.llm_model, "llm_provider")]
    entries += [(entry, "", "llm_fallback") for entry in settings.llm_fallback]
    for entry, model, field in entries:
        kind, _, named = entry.strip().partition(":")
        if kind.lower() not in PROVIDERS:
            raise StartupError(f"unknown language model provider '{entry}'; use one of {', '.join(PROVIDERS)}",
                               setting=setting_name(field), doc="docs/llm.md")
        if kind.lower() == "local":
            path = named or model
            if path:
                _model_file(Path(path), setting_name("llm_model" if field == "llm_provider" else field))
            elif settings.local_model_path is not None:
                _model_file(Path(settings.local_model_path), setting_name("local_model_path"))
    if settings.voice_worker not in VOICE_WORKERS:
        raise StartupError(f"unknown voice worker mode '{settings.voice_worker}'; use one of {', '.join(VOICE_WORKERS)}",
                           setting=setting_name("voice_worker"), doc="docs/voice-cloning.md")
    check_jobs(settings)
    if settings.engines not in ENGINE_PLACES:
        raise StartupError(f"unknown engines mode '{settings.engines}'; use one of {', '.join(ENGINE_PLACES)}",
                           setting=setting_name("engines"), doc="docs/cluster.md")
    if settings.engines == "ray":
        from deploy.config import load_config

        try:
            load_config(settings.ray_config)
        except DoppelError as exc:
            raise StartupError(exc.message.removeprefix("DOPPEL_RAY_CONFIG: ").rstrip("."), setting=setting_name("ray_config"),
                               doc="docs/cluster.md") from None
    _personas(settings)


def check_jobs(settings) -> None:
    """Where training jobs run and keep their files (also checked by `doppel worker`, which needs nothing else)."""
    if settings.jobs not in JOB_RUNNERS:
        raise StartupError(f"unknown job runner '{settings.jobs}'; use one of {', '.join(JOB_RUNNERS)}",
                           setting=setting_name("jobs"), doc="docs/cluster.md")
    if settings.artifacts:
        from storage.artifacts import ArtifactStore

        try:
            ArtifactStore(settings.artifacts)
        except (ValueError, ImportError) as exc:
            raise StartupError(f"'{settings.artifacts}' cannot be used: {exc}", setting=setting_name("artifacts"),
                               doc="docs/cluster.md") from None


def check_database(settings) -> None:
    """DOPPEL_DATABASE_URL names an async driver that is installed, and a SQLite file's folder exists (also checked
    by `doppel db` and `doppel worker`, which need nothing else)."""
    if not settings.database_url:
        return  # doppel.db in DOPPEL_DATA_DIR, which doppel makes
    setting, doc = setting_name("database_url"), "docs/architecture.md"
    examples = "sqlite+aiosqlite:///path/to/doppel.db or postgresql+asyncpg://user:password@host/database"
    try:
        url = make_url(settings.database_url)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        # the value is not shown: a mistyped URL may still hold a password
        raise StartupError(f"the value is not a database URL; use {examples}", setting=setting, doc=doc) from None
    try:
        dialect = url.get_dialect()
    except NoSuchModuleError:
        raise StartupError(f"'{url.drivername}' is not a database SQLAlchemy knows; use {examples}", setting=setting,
                           doc=doc) from None
    if not getattr(dialect, "is_async", False):
        raise StartupError(f"'{url.drivername}' is not an async driver, which doppel needs; use {examples}",
                           setting=setting, doc=doc)
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        raise StartupError(f"the driver of '{url.drivername}' is not installed ({exc.name or exc}); use {examples}",
                           setting=setting, doc=doc) from None
    database = url.database or ""
    if url.get_backend_name() == "sqlite" and database not in ("", ":memory:") and not database.startswith("file:"):
        # not made: a mistyped folder would otherwise start an empty database, and the real one would seem lost
        folder = Path(database).expanduser().parent
        if not folder.is_dir():
            raise StartupError(f"the folder {folder} for the SQLite file does not exist; create it, or correct the path",
                               setting=setting, doc=doc)


def _model_file(path: Path, setting: str) -> None:
    if not path.is_file():
        what = "is a folder, not a GGUF file" if path.is_dir() else "does not exist"
        raise StartupError(f"the local model file {path} {what}", setting=setting, doc="docs/llm.md")
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except OSError as exc:
        raise StartupError(f"the local model file {path} cannot be read: {exc.strerror or exc}", setting=setting,
                           doc="docs/llm.md") from None
    # every GGUF file starts with its magic and a format version (1 to 3 so far)
    if len(head) < 8 or head[:4] != b"GGUF" or not 1 <= int.from_bytes(head[4:], "little") <= 3:
        raise StartupError(f"the local model file {path} is not a GGUF model (damaged, or another format)",
                           setting=setting, doc="docs/llm.md")


def _personas(settings) -> None:
    from bot.personas import BrokenPersona, PersonaBook

    folder = settings.personas_dir
    if folder is not None and not Path(folder).is_dir():
        raise StartupError(f"{folder} is not a folder", setting=setting_name("personas_dir"), doc="docs/llm.md")
    try:
        book = PersonaBook(folder)
    except BrokenPersona as exc:
        raise StartupError(str(exc), setting=setting_name("personas_dir"), doc="docs/llm.md") from None
    if settings.persona not in book.names():
        raise StartupError(f"there is no persona called '{settings.persona}'; the personas are {', '.join(book.names())}",
                           setting=setting_name("persona"), doc="docs/llm.md")
