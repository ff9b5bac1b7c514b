"""`doppel` command line: reply to a voice file, chat in a terminal, manage voices, jobs and the database, start bots."""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path

from core.errors import DoppelError


def _services(args):
    from bot.settings import Settings
    from bot.wiring import build_services

    overrides = {}
    if getattr(args, "database_url", None):
        overrides["database_url"] = args.database_url
    return build_services(Settings(**overrides))


async def cmd_reply(args) -> int:
    from adapters.media import encode_ogg_opus
    from bot.common.dialogue import Dialogue, Incoming
    from core import audio as audio_ops
    from core.types import AudioFrame, ReplyDone, SentenceFrame, TranscriptFrame, VideoFrame

    services = await _services(args)
    try:
        chat_id = f"cli:{args.chat or args.user}"
        if getattr(args, "demo", False):
            from bot.common.demo import install_demo

            args.voice = args.avatar = await install_demo(services)
        choices = {k: v for k, v in (("voice", args.voice), ("avatar", args.avatar)) if v}
        if choices:  # kept for the chat, as /voice and /avatar keep them
            await services.chats.set(chat_id, **choices)
        msg = Incoming(user_id=f"cli:{args.user}", chat_id=chat_id,
                       audio=Path(args.audio).read_bytes() if args.audio else None, text=args.text)
        chunks = []
        video = None
        async for frame in Dialogue(services).reply(msg):
            if isinstance(frame, TranscriptFrame):
                print(f"you said: {frame.transcript.text}  [{frame.transcript.language}]")
            elif isinstance(frame, SentenceFrame) and args.verbose:
                print(f"  sentence {frame.index}: {frame.text}")
            elif isinstance(frame, AudioFrame):
                chunks.append(frame.audio)
            elif isinstance(frame, VideoFrame):
                video = frame
            elif isinstance(frame, ReplyDone):
                print(f"answer:   {frame.text}")
                print("timings:  " + "  ".join(f"{t.stage}={t.seconds:.2f}s" for t in frame.timings))
        if args.out and chunks:
            out = Path(args.out)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(encode_ogg_opus(audio_ops.join(chunks)))
            print(f"voice:    {out} ({sum(c.seconds for c in chunks):.1f} s of speech)")
        if args.video and video is not None:
            out = Path(args.video)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(video.mp4)
            print(f"video:    {out} ({video.seconds:.1f} s, the talking head)")
        elif args.video:
            print("video:    none (no avatar is set for this chat, or it is not ready)")
    finally:
        await services.close()
    return 0


async def cmd_chat(args) -> int:
    from bot.common.dialogue import Dialogue, Incoming
    from core.types import ReplyDone

    services = await _services(args)
    dialogue = Dialogue(services)
    print("Type a message; /reset forgets the conversation, Ctrl-D quits.")
    try:
        while True:
            try:
                line = await asyncio.to_thread(input, "you> ")
            except EOFError:
                return 0
            if not line.strip():
                continue
            if line.strip() == "/reset":
                from core.types import ConversationKey

                await services.history.reset(ConversationKey(f"cli:{args.user}", f"cli:{args.user}"))
                print("(forgotten)")
                continue
            try:
                async for frame in dialogue.reply(Incoming(f"cli:{args.user}", f"cli:{args.user}", text=line), speak=False):
                    if isinstance(frame, ReplyDone):
                        print(f"bot> {frame.text}")
            except DoppelError as exc:
                print(f"bot! {exc.message}")
    finally:
        await services.close()


async def cmd_voices(args) -> int:
    from bot.common.voices import add_voice
    from core.types import VoiceEngine

    services = await _services(args)
    try:
        if args.voices_cmd == "add":
            files = [(p, Path(p).read_bytes()) for p in args.files]
            texts = [args.transcript] * len(files) if args.transcript else None
            added = await add_voice(services, args.name, files, texts, engine=VoiceEngine(args.engine))
            for name, text, source in added.clips:
                print(f"{name}: {text!r} ({source})")
            print(f"voice '{added.name}': {len(added.clips)} clip(s), {added.seconds:.1f} s"
                  + (f"; training job {added.job.id} queued" if added.job else ""))
        elif args.voices_cmd == "list":
            for v in await services.voices.list():
                print(f"{v.name}\t{v.engine.value}\t{v.language}\t{'ready' if v.ready else 'training'}")
        elif args.voices_cmd == "subtitles":
            for clip in await services.voices.clips(args.name):
                print(Path(clip.path).with_suffix("." + args.format).read_text(encoding="utf-8"))
    finally:
        await services.close()
    return 0


async def cmd_db(args) -> int:
    from bot.settings import Settings
    from storage.db import create_engine, current_revision, upgrade

    settings = Settings(**({"database_url": args.database_url} if args.database_url else {}))
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(settings.db_url)
    try:
        await upgrade(engine)
        print(f"database at revision {await current_revision(engine)}")
    finally:
        await engine.dispose()
    return 0


async def cmd_jobs(args) -> int:
    services = await _services(args)
    try:
        if args.cancel:
            job = await services.jobs.cancel(args.cancel)
            print(f"job {job.id}: {job.status.value}")
            return 0
        for job in await services.jobs.list():
            eta = f" eta {job.eta_seconds:.0f}s" if job.eta_seconds else ""
            steps = f"\tstep {job.step}/{job.max_steps or '?'}" + (f" gpu {job.gpu}" if job.gpu is not None else "")
            print(f"{job.id}\t{job.kind}\t{job.target}\t{job.engine}\t{job.status.value}\t{job.progress:.0%}{eta}{steps}\t{job.message}")
            if args.verbose and job.log_tail:
                print("\t" + job.log_tail.replace("\n", "\n\t"))
    finally:
        await services.close()
    return 0


async def cmd_avatars(args) -> int:
    from bot.common.avatars import add_photo_avatar, list_avatars, submit_avatar_training

    services = await _services(args)
    try:
        if args.avatars_cmd == "add-video":
            job = await submit_avatar_training(services, args.name, Path(args.file).read_bytes(), Path(args.file).name,
                                               engine=args.engine, max_steps=args.max_steps, gpu=args.gpu, config=args.config)
            print(f"avatar '{args.name}': video accepted; training job {job.id} queued (run `doppel worker`)")
        elif args.avatars_cmd == "add-photo":
            avatar = await add_photo_avatar(services, args.name, Path(args.file).read_bytes())
            print(f"avatar '{avatar.name}': ready (photo)")
        elif args.avatars_cmd == "list":
            for a in await list_avatars(services):
                print(f"{a.name}\t{a.engine}\t{'ready' if a.ready else 'training'}")
        elif args.avatars_cmd == "render":
            from adapters.media import decode_audio

            audio = decode_audio(Path(args.audio).read_bytes())
            mp4 = await services.renderer.render(audio, args.name, args.text or "")
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_bytes(mp4)
            print(f"{args.out}: {audio.seconds:.1f} s")
    finally:
        await services.close()
    return 0


async def cmd_telegram(args) -> int:
    from bot.telegram.app import run_telegram

    services = await _services(args)
    try:
        await run_telegram(services)
    finally:
        await services.close()
    return 0


async def cmd_discord(args) -> int:
    from bot.discord.app import run

    services = await _services(args)
    try:
        await run(services)
    finally:
        await services.close()
    return 0


async def cmd_worker(args) -> int:
    from bot.settings import Settings
    from bot.worker import Worker
    from storage.db import create_engine, session_factory, upgrade
    from storage.jobs import JobRepository

    settings = Settings(**({"database_url": args.database_url} if args.database_url else {}))
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(settings.db_url)
    try:
        await upgrade(engine)
        worker = Worker(JobRepository(session_factory(engine)), settings.data_dir, kinds=args.kind or None)
        if args.once:
            job = await worker.run_once()
            print(f"job {job.id}: {job.status.value} {job.message}" if job else "no job queued")
        else:
            await worker.run_forever()
    finally:
        await engine.dispose()
    return 0


async def cmd_web(args) -> int:
    from bot.settings import Settings
    from bot.web.app import serve

    overrides: dict = {"database_url": args.database_url} if args.database_url else {}
    if args.host:
        overrides["web_host"] = args.host
    if args.port:
        overrides["web_port"] = args.port
    await serve(Settings(**overrides))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="doppel", description=__doc__)
    parser.add_argument("--database-url", help="any SQLAlchemy async URL (default: sqlite in the data dir)")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("reply", help="answer one voice or text message")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--audio", help="the question as an audio file (OGG/Opus, MP3, M4A, WAV, WebM ...)")
    src.add_argument("--text", help="the question as text")
    p.add_argument("--user", default="local")
    p.add_argument("--chat", default=None)
    p.add_argument("--out", help="where to write the OGG/Opus voice reply")
    p.add_argument("--video", help="where to write the talking-head MP4 (when the chat has an avatar)")
    p.add_argument("--voice", help="answer in this voice from now on in this chat")
    p.add_argument("--avatar", help="answer with this avatar's face from now on in this chat")
    p.add_argument("--demo", action="store_true", help="use the shipped demo voice and face (assets/demo)")
    p.set_defaults(run=cmd_reply)

    p = sub.add_parser("chat", help="a text conversation in the terminal")
    p.add_argument("--user", default="local")
    p.set_defaults(run=cmd_chat)

    p = sub.add_parser("voices", help="manage cloned voices")
    vs = p.add_subparsers(dest="voices_cmd", required=True)
    a = vs.add_parser("add", help="register reference recordings for a voice (transcribed when no transcript is given)")
    a.add_argument("name")
    a.add_argument("files", nargs="+")
    a.add_argument("--transcript", help="what the recordings say (default: transcribe them)")
    a.add_argument("--engine", default="lite", choices=["lite", "rvc", "cosyvoice", "tts"])
    vs.add_parser("list")
    s = vs.add_parser("subtitles", help="print a voice's clip transcripts as SRT or WebVTT")
    s.add_argument("name")
    s.add_argument("--format", default="srt", choices=["srt", "vtt"])
    p.set_defaults(run=cmd_voices)

    p = sub.add_parser("db", help="database maintenance")
    p.add_argument("action", choices=["upgrade"])
    p.set_defaults(run=cmd_db)

    p = sub.add_parser("jobs", help="list training jobs, or cancel one")
    p.add_argument("--cancel", type=int)
    p.set_defaults(run=cmd_jobs)

    p = sub.add_parser("telegram", help="run the Telegram bot (long polling, or a webhook if DOPPEL_TELEGRAM_WEBHOOK_URL is set)")
    p.set_defaults(run=cmd_telegram)

    p = sub.add_parser("discord", help="run the Discord bot (slash commands and voice messages; DOPPEL_DISCORD_TOKEN)")
    p.set_defaults(run=cmd_discord)

    p = sub.add_parser("avatars", help="talking-head avatars: from a video (trained) or a photo (at once)")
    av = p.add_subparsers(dest="avatars_cmd", required=True)
    a = av.add_parser("add-video", help="check a video of the person talking and queue its training")
    a.add_argument("name")
    a.add_argument("file")
    a.add_argument("--engine", default="lite", choices=["lite", "geneface"])
    a.add_argument("--config", default="full", choices=["tiny", "full"], help="lite model size")
    a.add_argument("--max-steps", type=int, default=0, help="0: the engine's default")
    a.add_argument("--gpu", type=int, default=None, help="CUDA device index for training")
    a = av.add_parser("add-photo", help="an avatar from one portrait photo, ready at once")
    a.add_argument("name")
    a.add_argument("file")
    av.add_parser("list")
    a = av.add_parser("render", help="render an avatar speaking an audio file to MP4")
    a.add_argument("name")
    a.add_argument("--audio", required=True)
    a.add_argument("--text", help="burned in as subtitles when DOPPEL_AVATAR_SUBTITLES is on")
    a.add_argument("--out", required=True)
    p.set_defaults(run=cmd_avatars)

    p = sub.add_parser("worker", help="run training jobs (voices, avatars) until stopped")
    p.add_argument("--kind", action="append", choices=["voice", "avatar"])
    p.add_argument("--once", action="store_true", help="run one queued job and exit")
    p.set_defaults(run=cmd_worker)

    p = sub.add_parser("web", help="serve the chat page and the admin dashboard (default http://127.0.0.1:5000)")
    p.add_argument("--host", help="default: DOPPEL_WEB_HOST")
    p.add_argument("--port", type=int, help="default: DOPPEL_WEB_PORT")
    p.set_defaults(run=cmd_web)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    try:
        return asyncio.run(args.run(args)) or 0
    except DoppelError as exc:
        print(f"doppel: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
