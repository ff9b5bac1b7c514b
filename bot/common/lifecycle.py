"""The life of a voice or an avatar after it was added: versions, retraining, delete, restore, retry, rename.

Every front-end (CLI, web admin, Telegram, Discord) calls these functions and shows `describe()`'s lines,
so all four behave alike. A trained version keeps serving until a newer one has finished training; a
failed or cancelled training changes nothing that serves.
"""
from __future__ import annotations

import asyncio
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from bot.wiring import Services
from core.errors import BadInput, UnknownAvatar, UnknownVoice
from core.types import Job, JobStatus, VoiceEngine
from storage.artifacts import ArtifactStore
from storage.avatars import AvatarRepository
from storage.versions import kept, moved_paths

KINDS = ("voice", "avatar")
_ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING)
_NAME = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")  # the same rule as when a voice or avatar is added


@dataclass(frozen=True)
class Entry:
    """One voice or avatar as an admin sees it."""

    kind: str  # "voice" | "avatar"
    name: str
    engine: str
    serving: int | None  # the version in use; None: not ready (or an engine without training, always ready)
    ready: bool
    versions: tuple[int, ...]
    job: Job | None  # the latest training job

    @property
    def state(self) -> str:
        """One of: ready, training, ready+training, not ready (failed / cancelled / never trained)."""
        training = self.job is not None and self.job.status in _ACTIVE
        if self.ready:
            return "ready+training" if training else "ready"
        return "training" if training else "not ready"


def describe(entry: Entry) -> str:
    """A one-line status, e.g. "voice anna: ready v2 (kept v1, v2) · training 34% (job 7)"."""
    head = f"{entry.kind} {entry.name}: "
    if entry.ready:
        head += f"ready v{entry.serving}" if entry.serving else f"ready ({entry.engine})"
    else:
        head += "not ready"
    if entry.versions:
        head += " (kept " + ", ".join(f"v{v}" for v in entry.versions) + ")"
    job = entry.job
    if job is not None and job.status in _ACTIVE:
        head += f" · training {job.progress:.0%} (job {job.id})"
    elif job is not None and job.status in (JobStatus.FAILED, JobStatus.CANCELLED) and job.id:
        what = "failed" if job.status is JobStatus.FAILED else "cancelled"
        reason = f": {job.message}" if job.message and job.status is JobStatus.FAILED else ""
        head += f" · last training {what}{reason} (retry: job {job.id})"
    return head


def _folder(services: Services, kind: str, name: str) -> Path:
    return services.settings.data_dir / ("voices" if kind == "voice" else "avatars") / name


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise BadInput(f"Say 'voice' or 'avatar', not '{kind}'.")


def _versions(params: dict, key: str) -> tuple[int, ...]:
    return tuple(int(v["version"]) for v in kept(params, key))


async def entries(services: Services, kind: str | None = None) -> list[Entry]:
    out: list[Entry] = []
    if kind in (None, "voice"):
        for v in await services.voices.list():
            out.append(Entry("voice", v.name, v.engine.value, v.params.get("version"), v.ready, _versions(v.params, "artifact"),
                             await services.jobs.latest("voice", v.name)))
    if kind in (None, "avatar"):
        for a in await AvatarRepository(services.sessions).list():
            out.append(Entry("avatar", a.name, a.engine, a.params.get("version"), a.ready, _versions(a.params, "artifact_path"),
                             await services.jobs.latest("avatar", a.name)))
    return out


async def entry(services: Services, kind: str, name: str) -> Entry:
    _check_kind(kind)
    if kind == "voice":
        v = await services.voices.get(name)
        return Entry("voice", v.name, v.engine.value, v.params.get("version"), v.ready, _versions(v.params, "artifact"),
                     await services.jobs.latest("voice", name))
    a = await AvatarRepository(services.sessions).get(name)
    return Entry("avatar", a.name, a.engine, a.params.get("version"), a.ready, _versions(a.params, "artifact_path"),
                 await services.jobs.latest("avatar", name))


async def _stop_training(services: Services, kind: str, name: str, wait_s: float = 10.0) -> None:
    """Cancel its queued and running jobs and wait (briefly) until the worker has let go of them."""
    active = [j for j in await services.jobs.for_target(kind, name) if j.status in _ACTIVE]
    for job in active:
        await services.jobs.cancel(job.id)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while active and loop.time() < deadline:
        active = [j for j in active if (await services.jobs.get(j.id)).status in _ACTIVE]
        if active:
            await asyncio.sleep(0.2)
    for job in active:
        # no worker answered (none is running, or it died): closed here, so no restart resumes it
        await services.jobs.finish(job.id, JobStatus.CANCELLED, f"cancelled: the {kind} was deleted")


async def delete(services: Services, kind: str, name: str) -> str:
    """Cancel its training, remove its record (and a voice's clips), its folder and its jobs' working folders."""
    _check_kind(kind)
    await entry(services, kind, name)  # an unknown name is refused before anything changes
    await _stop_training(services, kind, name)
    if kind == "voice":
        rvc_files = await _rvc_files(services, name)
        await services.voices.delete(name)
        for path in rvc_files:
            path.unlink(missing_ok=True)
    else:
        await AvatarRepository(services.sessions).delete(name)
    store = ArtifactStore(services.settings.artifacts) if services.settings.artifacts else None
    for job in await services.jobs.for_target(kind, name):
        await asyncio.to_thread(shutil.rmtree, services.settings.data_dir / "jobs" / str(job.id), True)
        if store is not None:  # where cluster jobs kept their checkpoints (bot/ray_worker.py)
            await asyncio.to_thread(store.remove, job.id)
    # a voice's clips and versions or an avatar's source videos: gigabytes, removed off the event loop
    await asyncio.to_thread(shutil.rmtree, _folder(services, kind, name), True)
    return f"{kind} '{name}' deleted, with its files"


async def _rvc_files(services: Services, name: str) -> list[Path]:
    """The model and index an RVC voice was registered with: they are named after the voice, so left behind they
    would block registering the name again. Only files in the models folder that no other voice uses."""
    voices = await services.voices.list()
    voice = next((v for v in voices if v.name == name), None)
    if voice is None or voice.engine is not VoiceEngine.RVC:
        return []
    folder = Path(services.settings.rvc_models_dir).resolve()
    used_elsewhere = {str(v.params.get(key) or "") for v in voices if v.name != name for key in _RVC_FILES}
    paths = []
    for key in _RVC_FILES:
        named = str(voice.params.get(key) or "")
        path = (folder / named).resolve()
        if named and named not in used_elsewhere and path.parent == folder:
            paths.append(path)
    return paths


_RVC_FILES = ("model", "index")  # not its content_model: HuBERT is shared by every RVC voice


async def restore(services: Services, kind: str, name: str, version: int) -> str:
    _check_kind(kind)
    if kind == "voice":
        await services.voices.restore(name, version)
    else:
        await AvatarRepository(services.sessions).restore(name, version)
    return f"{kind} '{name}' now uses v{version}"


async def retry(services: Services, job_id: int) -> Job:
    """Queue a failed or cancelled training again; the version serving now keeps serving meanwhile."""
    old = await services.jobs.get(job_id)
    current = [j for j in await services.jobs.for_target(old.kind, old.target) if j.status in _ACTIVE]
    if current:
        raise BadInput(f"{old.kind} '{old.target}' is already training (job {current[0].id}).")
    await entry(services, old.kind, old.target)  # deleted since: nothing to retry
    return await services.jobs.resubmit(job_id)


async def rename(services: Services, kind: str, old: str, new: str) -> str:
    """Rename a voice or avatar that is not training: its folder, record, clips, jobs and the chats that use it follow."""
    _check_kind(kind)
    if not _NAME.match(new):
        raise BadInput(f"A {kind} name may use letters, digits, '-' and '_' (up to 64).")
    current = await entry(services, kind, old)
    if current.job is not None and current.job.status in _ACTIVE:
        raise BadInput(f"{kind} '{old}' is training (job {current.job.id}); cancel it or wait before renaming.")
    try:
        await entry(services, kind, new)
    except (UnknownVoice, UnknownAvatar):
        pass
    else:
        raise BadInput(f"The name '{new}' is taken by another {kind}.")
    src, dst = _folder(services, kind, old), _folder(services, kind, new)
    if dst.exists():
        raise BadInput(f"A folder for '{new}' is already there ({dst.name}); delete it first.")
    old_dir, new_dir = str(src), str(dst)
    if src.exists():
        await asyncio.to_thread(src.rename, dst)
    try:
        if kind == "voice":
            await services.voices.rename(old, new, old_dir, new_dir)
        else:
            await AvatarRepository(services.sessions).rename(old, new, old_dir, new_dir)
    except Exception:
        if dst.exists():
            dst.rename(src)  # the database said no: the files go back where the record points
        raise
    params = {job_id: moved_paths(p, old_dir, new_dir) for job_id, p in (await services.jobs.params_of(kind, old)).items()}
    await services.jobs.retarget(kind, old, new, params)
    return f"{kind} '{old}' is now '{new}'"
