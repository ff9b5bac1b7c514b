"""Admin commands: enrol a voice, train an avatar, their versions (list, restore, rename, delete, retry),
watch and stop jobs, let users in or out, usage figures."""
from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.filters import Command, CommandObject
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import Message
from aiogram.utils.chat_action import ChatActionSender

from bot.common import commands, lifecycle
from bot.common.access import AccessPolicy
from bot.common.avatars import add_photo_avatar, submit_avatar_training
from bot.common.progress import describe, recent_jobs
from bot.common.userqueue import UserQueue
from bot.common.voices import add_voice
from bot.telegram import files
from bot.telegram.job_status import JobStatusMessages, notify_target
from bot.telegram.middlewares import AdminOnlyMiddleware
from bot.wiring import Services
from core.errors import BadInput, NotAllowed
from core.types import JobStatus


_RECORDING = F.voice | F.audio | F.document.mime_type.startswith("audio/")
_VIDEO = F.video | F.video_note | F.document.mime_type.startswith("video/")
_PHOTO = F.photo | F.document.mime_type.startswith("image/")
MAX_CLIPS = 20


class Collecting(StatesGroup):
    voice_clips = State()
    avatar_video = State()


# ---- voices ----

async def add_voice_start(message: Message, command: CommandObject, bot: Bot, state: FSMContext, services: Services,
                          statuses: JobStatusMessages) -> None:
    name = _name(command, "/add_voice NAME, as a reply to a recording, or then send recordings and /done")
    replied = message.reply_to_message
    ref = files.speech_of(replied) if replied is not None else None
    if ref is not None:
        await _enrol(message, bot, services, statuses, name, [ref])
        return
    await state.set_state(Collecting.voice_clips)
    await state.set_data({"name": name, "clips": []})
    await message.answer(f"Send recordings of '{name}' (voice messages or audio files), then /done. /abort stops.",
                         parse_mode=None)


async def add_voice_clip(message: Message, state: FSMContext) -> None:
    ref = files.speech_of(message)
    assert ref is not None
    data = await state.get_data()
    clips = list(data.get("clips", []))
    if len(clips) >= MAX_CLIPS:
        raise BadInput(f"That is {MAX_CLIPS} recordings already; send /done.")
    clips.append([ref.file_id, ref.size, ref.kind, ref.name])
    await state.update_data(clips=clips)
    await message.answer(f"Got it ({len(clips)}). Send more, or /done.", parse_mode=None)


async def add_voice_done(message: Message, bot: Bot, state: FSMContext, services: Services,
                         statuses: JobStatusMessages) -> None:
    data = await state.get_data()
    refs = [files.MediaRef(*clip) for clip in data.get("clips", [])]
    if not refs:
        raise BadInput("Send at least one recording first, or /abort.")
    await state.clear()
    await _enrol(message, bot, services, statuses, data["name"], refs)


async def _enrol(message: Message, bot: Bot, services: Services, statuses: JobStatusMessages, name: str,
                 refs: list[files.MediaRef]) -> None:
    async with ChatActionSender.typing(chat_id=message.chat.id, bot=bot):  # transcribing takes a moment
        recordings = [(f"{ref.kind}-{i}{_suffix(ref)}", await files.download(bot, ref, services.settings))
                      for i, ref in enumerate(refs)]
        added = await add_voice(services, name, recordings, notify_chat=notify_target(message.chat.id))
    lines = [f"Voice '{added.name}': {len(added.clips)} recording(s), {added.seconds:.1f} s."]
    lines += [f"- {file}: {text or '(no words heard)'}" + (" (unsure: please check it)" if source == "asr-unsure" else "")
              for file, text, source in added.clips]
    await message.answer("\n".join(lines), parse_mode=None)
    if added.job is not None:
        statuses.follow(message.chat.id, added.job)


# ---- avatars ----

async def train_avatar_start(message: Message, command: CommandObject, bot: Bot, state: FSMContext, services: Services,
                             statuses: JobStatusMessages) -> None:
    name = _name(command, "/train_avatar NAME, as a reply to a video or photo (or as its caption), or then send it")
    for candidate in (message, message.reply_to_message):
        if candidate is None:
            continue
        if (video := files.video_of(candidate)) is not None:
            await _train(message, bot, services, statuses, name, video)
            return
        if (photo := files.photo_of(candidate)) is not None:
            await _from_photo(message, bot, services, name, photo)
            return
    await state.set_state(Collecting.avatar_video)
    await state.set_data({"name": name})
    await message.answer(f"Send a video of '{name}' talking (trained, takes a while), or one photo of their face "
                         "(talks at once). /abort stops.", parse_mode=None)


async def train_avatar_video(message: Message, bot: Bot, state: FSMContext, services: Services,
                             statuses: JobStatusMessages) -> None:
    ref = files.video_of(message)
    assert ref is not None
    name = (await state.get_data())["name"]
    await state.clear()
    await _train(message, bot, services, statuses, name, ref)


async def train_avatar_photo(message: Message, bot: Bot, state: FSMContext, services: Services) -> None:
    ref = files.photo_of(message)
    assert ref is not None
    name = (await state.get_data())["name"]
    await state.clear()
    await _from_photo(message, bot, services, name, ref)


async def _from_photo(message: Message, bot: Bot, services: Services, name: str, ref: files.MediaRef) -> None:
    avatar = await add_photo_avatar(services, name, await files.download(bot, ref, services.settings))
    await message.answer(f"Avatar '{avatar.name}' is ready: it talks from this photo. "
                         f"/avatar {avatar.name} makes me use it in a chat.", parse_mode=None)


async def _train(message: Message, bot: Bot, services: Services, statuses: JobStatusMessages, name: str,
                 ref: files.MediaRef) -> None:
    async with ChatActionSender.typing(chat_id=message.chat.id, bot=bot):  # the video checks read every frame
        video = await files.download(bot, ref, services.settings)
        job = await submit_avatar_training(services, name, video, ref.name or "source.mp4",
                                           notify_chat=notify_target(message.chat.id))
    statuses.follow(message.chat.id, job)


async def abort(message: Message, state: FSMContext) -> None:
    await state.clear()
    await message.answer("Stopped; nothing was added.", parse_mode=None)


# ---- jobs, users, figures ----

async def jobs(message: Message, services: Services) -> None:
    await message.answer(recent_jobs(await services.jobs.list()), parse_mode=None)


async def cancel_job(message: Message, arg: str, services: Services, is_admin: bool) -> None:
    """`/cancel JOB` (routed here from the user command, which also serves `/cancel` alone)."""
    if not is_admin:
        raise NotAllowed("Sorry, only the bot's admins can stop training jobs. /cancel alone stops your own answer.")
    if not arg.isdigit():
        raise BadInput("Usage: /cancel JOB, with the job's number from /jobs.")
    job = await services.jobs.cancel(int(arg))
    if job.status is JobStatus.RUNNING:
        await message.answer(f"Job {job.id} is stopping (within a few seconds); what serves now keeps serving.",
                             parse_mode=None)
    else:
        await message.answer(describe(job), parse_mode=None)


# ---- versions: list, restore, rename, delete, retry ----

_KIND_USAGE = "voice or avatar"


async def versions(message: Message, services: Services) -> None:
    listed = await lifecycle.entries(services)
    text = "\n".join(lifecycle.describe(e) for e in listed) if listed else "No voices or avatars yet."
    await message.answer(text, parse_mode=None)


async def restore(message: Message, command: CommandObject, services: Services) -> None:
    kind, name, version = _args(command, 3, f"/restore {_KIND_USAGE} NAME VERSION (e.g. /restore voice anna v1)")
    digits = version.lower().removeprefix("v")
    if not digits.isdigit():
        raise BadInput("A version is a number like 1 or v1; /versions lists them.")
    await message.answer(await lifecycle.restore(services, kind, name, int(digits)) + ".", parse_mode=None)


async def rename(message: Message, command: CommandObject, services: Services) -> None:
    kind, old, new = _args(command, 3, f"/rename {_KIND_USAGE} NAME NEW_NAME")
    await message.answer(await lifecycle.rename(services, kind, old, new) + ".", parse_mode=None)


async def delete(message: Message, command: CommandObject, services: Services) -> None:
    kind, name = _args(command, 2, f"/delete {_KIND_USAGE} NAME")
    await message.answer(await lifecycle.delete(services, kind, name) + ".", parse_mode=None)


async def retry(message: Message, command: CommandObject, services: Services, statuses: JobStatusMessages) -> None:
    (arg,) = _args(command, 1, "/retry JOB, with a failed or cancelled job's number from /jobs or /versions")
    if not arg.isdigit():
        raise BadInput("Usage: /retry JOB, with the job's number from /jobs.")
    job = await lifecycle.retry(services, int(arg))
    await message.answer(f"{job.kind.capitalize()} '{job.target}': training again as job {job.id}; "
                         "what serves now keeps serving until it is done.", parse_mode=None)
    statuses.follow(message.chat.id, job)


def _args(command: CommandObject, count: int, usage: str) -> list[str]:
    words = (command.args or "").split()
    if len(words) != count:
        raise BadInput(f"Usage: {usage}.")
    return words


async def allow(message: Message, command: CommandObject, access: AccessPolicy) -> None:
    target = _target_user(message, command)
    await access.allow(target)
    await message.answer(f"User {target} may now use the bot.", parse_mode=None)


async def deny(message: Message, command: CommandObject, access: AccessPolicy, queue: UserQueue) -> None:
    target = _target_user(message, command)
    await access.deny(target)
    queue.cancel(access.key(target))
    await message.answer(f"User {target} may no longer use the bot.", parse_mode=None)


async def stats(message: Message, services: Services, queue: UserQueue) -> None:
    await message.answer(await commands.stats(services, queue), parse_mode=None)


def _name(command: CommandObject, usage: str) -> str:
    name = (command.args or "").strip()
    if not name or " " in name:
        raise BadInput(f"Usage: {usage}.")
    return name


def _target_user(message: Message, command: CommandObject) -> int:
    arg = (command.args or "").strip()
    if arg.lstrip("-").isdigit():
        return int(arg)
    replied = message.reply_to_message
    if replied is not None and replied.from_user is not None and not arg:
        return replied.from_user.id
    raise BadInput("Give the user's Telegram id (a number), or send the command as a reply to their message.")


def _suffix(ref: files.MediaRef) -> str:
    if "." in ref.name:
        return "." + ref.name.rsplit(".", 1)[-1].lower()
    return {"voice": ".ogg", "video_note": ".mp4", "video": ".mp4"}.get(ref.kind, "")


def make_router() -> Router:
    router = Router(name="admin")
    router.message.middleware(AdminOnlyMiddleware())
    router.message.register(add_voice_start, Command("add_voice"))
    router.message.register(add_voice_clip, Collecting.voice_clips, _RECORDING)
    router.message.register(add_voice_done, Collecting.voice_clips, Command("done"))
    router.message.register(train_avatar_start, Command("train_avatar"))
    router.message.register(train_avatar_video, Collecting.avatar_video, _VIDEO)
    router.message.register(train_avatar_photo, Collecting.avatar_video, _PHOTO)
    router.message.register(abort, Collecting.voice_clips, Command("abort"))
    router.message.register(abort, Collecting.avatar_video, Command("abort"))
    router.message.register(jobs, Command("jobs"))
    router.message.register(versions, Command("versions"))
    router.message.register(restore, Command("restore"))
    router.message.register(rename, Command("rename"))
    router.message.register(delete, Command("delete"))
    router.message.register(retry, Command("retry"))
    router.message.register(allow, Command("allow"))
    router.message.register(deny, Command("deny"))
    router.message.register(stats, Command("stats"))
    return router
