"""`doppel` command line: reply to a voice file, chat in a terminal, manage voices, jobs and the database, start bots."""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from core.errors import DoppelError


def _settings(args, *, checked: bool = True, **overrides):
    """checked=False: only the database is checked (`doppel db`, `doppel worker` need nothing else)."""
    from adapters.settings import Settings
    from bot.startup import check_database, check_settings

    if getattr(args, "database_url", None):
        overrides["database_url"] = args.database_url
    settings = Settings(**overrides)
    if checked:
        check_settings(settings)
    else:
        check_database(settings)
    return settings


def _services(args, **overrides):
    from bot.wiring import build_services

    return build_services(_settings(args, **overrides))


class FileProblem(DoppelError):
    code = "file_problem"


def _read(path: str) -> bytes:
    """A file the user named on the command line, or one line saying why it cannot be read."""
    p = Path(path)
    if p.is_dir():
        raise FileProblem(f"{path} is a folder; give the path of a file")
    try:
        return p.read_bytes()
    except FileNotFoundError:
        raise FileProblem(f"{path}: no such file") from None
    except OSError as exc:
        raise FileProblem(f"{path} cannot be read: {exc.strerror or exc}") from None


def _writable(path: str, option: str) -> Path:
    """Checked before any work, so a reply is never made (and stored) only to be lost at the end."""
    p = Path(path)
    if p.is_dir():
        raise FileProblem(f"{option} {path} is a folder; give the path of the file to write")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FileProblem(f"{option} {path}: its folder cannot be made: {exc.strerror or exc}") from None
    return p


def _write_whole(path: Path, data: bytes, option: str) -> None:
    """The file whole or not at all: written beside its place and renamed onto it, so a full disk leaves no
    truncated file where a player would take it for the answer (and an earlier file there stays as it was)."""
    part = path.with_name(f".{path.name}.part")
    try:
        with open(part, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(part, path)
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise FileProblem(f"{option} {path} cannot be written: {exc.strerror or exc}; nothing was stored") from None


async def cmd_reply(args) -> int:
    from adapters.media import encode_ogg_opus
    from bot.common.dialogue import Dialogue, Incoming
    from core import audio as audio_ops
    from core.types import AudioFrame, ConversationKey, NoteFrame, ReplyDone, SentenceFrame, SpeechDone, TranscriptFrame, VideoFrame

    audio = _read(args.audio) if args.audio else None
    out = _writable(args.out, "--out") if args.out else None
    video_out = _writable(args.video_out, "--video-out") if args.video_out else None
    # the demo's model writes its likeliest words (no sampling), so every `make demo` says the same
    services = await _services(args, **({"llm_temperature": 0.0} if getattr(args, "demo", False) else {}))
    try:
        chat_id = f"cli:{args.chat or args.user}"
        persona = None
        if getattr(args, "demo", False):
            from bot.common.demo import install_demo, warm_demo

            args.voice = args.avatar = persona = await install_demo(services, ConversationKey(f"cli:{args.user}", chat_id))
            # timings start when the question is taken: the models' first load is done here, and said apart
            print(f"warm-up:  {await warm_demo(services):.2f}s (models loaded, the demo voice and face used once)")
        choices = {k: v for k, v in (("voice", args.voice), ("avatar", args.avatar), ("persona", persona)) if v}
        if choices:  # kept for the chat, as /voice and /avatar keep them
            await services.chats.set(chat_id, **choices)
        msg = Incoming(user_id=f"cli:{args.user}", chat_id=chat_id, audio=audio, text=args.text)
        chunks = []
        written = ""
        async for frame in Dialogue(services).reply(msg):
            if isinstance(frame, TranscriptFrame):
                print(f"you said: {frame.transcript.text}  [{frame.transcript.language}]")
            elif isinstance(frame, SentenceFrame) and args.verbose:
                print(f"  sentence {frame.index}: {frame.text}")
            elif isinstance(frame, AudioFrame):
                chunks.append(frame.audio)
            elif isinstance(frame, NoteFrame):
                print(f"note:     {frame.text}")
            elif isinstance(frame, SpeechDone) and out is not None and chunks:
                # written before the exchange is stored: if the file cannot be written, nothing is kept
                _write_whole(out, encode_ogg_opus(audio_ops.join(chunks)), "--out")
                written = f"voice:    {out} ({sum(c.seconds for c in chunks):.1f} s of speech)" + written
            elif isinstance(frame, VideoFrame) and video_out is not None:
                _write_whole(video_out, frame.mp4, "--video-out")
                written += f"\nvideo:    {video_out} ({frame.seconds:.1f} s, the talking head)"
            elif isinstance(frame, ReplyDone):
                print(f"answer:   {frame.text}")
                print("timings:  " + "  ".join(f"{t.stage}={t.seconds:.2f}s" for t in frame.timings))
        if video_out is not None and "video:" not in written:
            written += "\nvideo:    none (no avatar is set for this chat, or it is not ready)"
        if written:
            print(written.strip("\n"))
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
            files = [(p, _read(p)) for p in args.files]
            texts = [args.transcript] * len(files) if args.transcript else None
            added = await add_voice(services, args.name, files, texts, engine=VoiceEngine(args.engine))
            for name, text, source in added.clips:
                print(f"{name}: {text!r} ({source})")
            print(f"voice '{added.name}': {len(added.clips)} clip(s), {added.seconds:.1f} s"
                  + (f"; training job {added.job.id} queued" if added.job else ""))
        elif args.voices_cmd in LIFECYCLE:
            await _lifecycle(services, "voice", args)
        elif args.voices_cmd == "subtitles":
            from core.subtitles import joined, read_cues, to_srt, to_vtt

            # one valid file for all the clips, laid end to end (not each clip's file printed after the other)
            clips = []
            for clip in await services.voices.clips(args.name):
                made = Path(clip.path).with_suffix(".vtt")
                cues = read_cues(made.read_text(encoding="utf-8")) if made.is_file() else []
                clips.append((clip.seconds, cues or [(0.0, clip.seconds, clip.transcript)]))
            print((to_vtt if args.format == "vtt" else to_srt)(joined(clips)), end="")
    finally:
        await services.close()
    return 0


LIFECYCLE = ("list", "delete", "restore", "rename")


async def _lifecycle(services, kind: str, args) -> None:
    from bot.common import lifecycle

    command = getattr(args, f"{kind}s_cmd")
    if command == "list":
        from bot.common.voices import quality_summary

        quality = {v.name: quality_summary(v) for v in await services.voices.list()} if kind == "voice" else {}
        for entry in await lifecycle.entries(services, kind):
            print(" · ".join(x for x in (lifecycle.describe(entry), quality.get(entry.name, "")) if x))
    elif command == "delete":
        print(await lifecycle.delete(services, kind, args.name))
    elif command == "restore":
        print(await lifecycle.restore(services, kind, args.name, _version(args.version)))
    elif command == "rename":
        print(await lifecycle.rename(services, kind, args.name, args.new_name))


def _version(text: str) -> int:
    digits = text.lower().removeprefix("v")
    if not digits.isdigit():
        raise SystemExit(f"doppel: a version is a number like 2 or v2, not {text!r}")
    return int(digits)


def _lifecycle_parsers(sub, kind: str) -> None:
    sub.add_parser("list", help=f"every {kind} with its versions, the one serving, and its training")
    a = sub.add_parser("delete", help=f"delete a {kind} with its files (its training is cancelled)")
    a.add_argument("name")
    a = sub.add_parser("restore", help=f"serve an earlier version of a {kind} again")
    a.add_argument("name")
    a.add_argument("version", help="e.g. 1 or v1")
    a = sub.add_parser("rename", help=f"rename a {kind}; chats that use it follow")
    a.add_argument("name")
    a.add_argument("new_name")


async def cmd_voices_add_rvc(args) -> int:
    """`doppel voices add-rvc NAME model.pth [--index F] [--pitch N] ...`: checked in full, then ready at once."""
    from bot.common.rvc_voices import add_rvc_voice
    from core.errors import BadInput

    settings = {k: v for k, v in (("pitch_shift", args.pitch), ("f0_method", args.f0_method), ("index_rate", args.index_rate),
                                  ("protect", args.protect), ("rms_mix_rate", args.rms_mix), ("speaker_id", args.speaker))
                if v is not None}
    model = Path(args.model)
    index = Path(args.index) if args.index else None
    for path in (model, index):
        if path is not None and not path.is_file():
            raise BadInput(f"There is no file '{path}'.")
    services = await _services(args)
    try:
        added = await add_rvc_voice(services, args.name, (model.name, model.read_bytes()),
                                    (index.name, index.read_bytes()) if index else None, settings, language=args.language)
        print(f"voice '{added.voice.name}': RVC {added.version}, {added.sample_rate} Hz, {added.speakers} speaker(s); "
              f"test sentence converted ({added.test_seconds:.1f} s); ready")
    finally:
        await services.close()
    return 0


async def cmd_db(args) -> int:
    from storage.db import create_engine, current_revision, upgrade

    settings = _settings(args, checked=False)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(settings.db_url)
    try:
        await upgrade(engine)
        print(f"database at revision {await current_revision(engine)}")
    finally:
        await engine.dispose()
    return 0


async def cmd_jobs(args) -> int:
    if args.cancel:
        return await _cancel_job(args)
    services = await _services(args)
    try:
        if args.retry:
            from bot.common.lifecycle import retry

            job = await retry(services, args.retry)
            print(f"job {job.id} queued: {job.kind} '{job.target}' again (retry of job {args.retry})")
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


async def _cancel_job(args) -> int:
    """The database alone: the worker does the stopping. Building every engine first (what _services does) took
    6-16 s on a busy machine before the one UPDATE that cancelling is."""
    from storage.db import create_engine, session_factory, upgrade
    from storage.jobs import JobRepository

    engine = create_engine(_settings(args).db_url)
    try:
        await upgrade(engine)
        job = await JobRepository(session_factory(engine)).cancel(args.cancel)
    finally:
        await engine.dispose()
    print(f"job {job.id}: {job.status.value}" + (" (stopping)" if job.status.value == "running" else ""))
    return 0


async def cmd_avatars(args) -> int:
    from bot.common.avatars import add_photo_avatar, submit_avatar_training

    services = await _services(args)
    try:
        if args.avatars_cmd == "add-video":
            job = await submit_avatar_training(services, args.name, _read(args.file), Path(args.file).name,
                                               engine=args.engine, max_steps=args.max_steps, gpu=args.gpu, config=args.config)
            print(f"avatar '{args.name}': video accepted; training job {job.id} queued (run `doppel worker`)")
        elif args.avatars_cmd == "add-photo":
            avatar = await add_photo_avatar(services, args.name, _read(args.file))
            print(f"avatar '{avatar.name}': ready (photo)")
        elif args.avatars_cmd in LIFECYCLE:
            await _lifecycle(services, "avatar", args)
        elif args.avatars_cmd == "render":
            from adapters.media import decode_audio

            # a clip to render is no chat message, but it is bounded all the same, and decoded off the loop
            audio = await asyncio.to_thread(decode_audio, _read(args.audio), max_seconds=600)
            mp4 = await services.renderer.render(audio, args.name, args.text or "")
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_bytes(mp4)
            print(f"{args.out}: {audio.seconds:.1f} s")
    finally:
        await services.close()
    return 0


async def cmd_geneface(args) -> int:
    """Admin tools for the GeneFace++ engine: its run-time downloads fetched once, into the mounted assets folder."""
    from adapters.settings import Settings
    from bot.common.geneface_assets import assets_root, fetch_and_check

    code, lines = await fetch_and_check(assets_root(Settings(), args.dir), fetch=args.geneface_cmd == "fetch-assets",
                                        mirror=getattr(args, "mirror", None) or "")
    for line in lines:
        print(line, file=sys.stderr if code == 2 else sys.stdout)
    return code


async def cmd_telegram(args) -> int:
    from bot.common.warmup import serve_while_warming
    from bot.telegram.app import run_telegram

    services = await _services(args)
    try:
        await serve_while_warming(services, "telegram", lambda: run_telegram(services))
    finally:
        await services.close()
    return 0


async def cmd_discord(args) -> int:
    from bot.common.warmup import serve_while_warming
    from bot.discord.app import run

    services = await _services(args)
    try:
        await serve_while_warming(services, "discord", lambda: run(services))
    finally:
        await services.close()
    return 0


async def cmd_worker(args) -> int:
    from bot.startup import check_jobs
    from bot.worker import Worker
    from storage.db import create_engine, session_factory, upgrade
    from storage.jobs import JobRepository

    settings = _settings(args, checked=False)
    check_jobs(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(settings.db_url)
    try:
        await upgrade(engine)
        jobs = JobRepository(session_factory(engine))
        worker: Worker
        if settings.jobs == "ray":
            from bot.ray_worker import RayWorker
            from deploy.cluster import connect

            connect(settings)
            worker = RayWorker(jobs, settings.data_dir, db_url=settings.db_url, artifacts=settings.artifacts,
                               num_cpus=settings.ray_job_cpus, num_gpus=settings.ray_job_gpus,
                               retries=settings.ray_job_retries, kinds=args.kind or None)
        else:
            worker = Worker(jobs, settings.data_dir, kinds=args.kind or None)
        if args.once:
            job = await worker.run_once()
            print(f"job {job.id}: {job.status.value} {job.message}" if job else "no job queued")
        else:
            await worker.run_forever()
    finally:
        await engine.dispose()
    return 0


async def cmd_web(args) -> int:
    from bot.web.app import serve

    overrides: dict = {}
    if args.host:
        overrides["web_host"] = args.host
    if args.port:
        overrides["web_port"] = args.port
    await serve(_settings(args, **overrides))
    return 0


async def cmd_engines(args) -> int:
    from deploy.cluster import config_lines, deploy, remote_cluster, status_lines
    from deploy.config import load_config

    settings = _settings(args)
    remote_cluster(settings)
    if args.engines_cmd == "serve":
        config = load_config(Path(args.config) if args.config else settings.ray_config)
        await asyncio.to_thread(deploy, settings, config)  # returns once every deployment has its replicas
        print("\n".join([f"deployed '{config.app}' on {settings.ray_address}:", *config_lines(config)]))
    else:
        from deploy.cluster import config_of

        print("\n".join(status_lines(config_of(settings).app)))
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
    p.add_argument("--video-out", "--video", dest="video_out",
                   help="where to write the talking-head MP4 (when the chat has an avatar)")
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
    _lifecycle_parsers(vs, "voice")
    a = vs.add_parser("add-rvc", help="register an RVC model (.pth, optional .index): checked, then ready at once")
    a.add_argument("name")
    a.add_argument("model", help="the .pth RVC exported")
    a.add_argument("--index", help="its retrieval index (.index, or the features as .npy)")
    a.add_argument("--pitch", type=float, help="pitch shift in semitones (default 0)")
    a.add_argument("--f0-method", choices=["harvest", "yin", "pyin"], help="default yin; harvest is what RVC trains on")
    a.add_argument("--index-rate", type=float, help="0..1, default 0.75")
    a.add_argument("--protect", type=float, help="0..0.5, default 0.33 (0.5: off)")
    a.add_argument("--rms-mix", type=float, help="0..1, default 0.25 (1: the model's own loudness)")
    a.add_argument("--speaker", type=int, help="speaker id in a multi-speaker model (default 0)")
    a.add_argument("--language", default="en")
    a.set_defaults(run=cmd_voices_add_rvc)
    s = vs.add_parser("subtitles", help="print a voice's clip transcripts as SRT or WebVTT")
    s.add_argument("name")
    s.add_argument("--format", default="srt", choices=["srt", "vtt"])
    p.set_defaults(run=cmd_voices)

    p = sub.add_parser("db", help="database maintenance")
    p.add_argument("action", choices=["upgrade"])
    p.set_defaults(run=cmd_db)

    p = sub.add_parser("jobs", help="list training jobs, cancel one, or retry a failed or cancelled one")
    p.add_argument("--cancel", type=int)
    p.add_argument("--retry", type=int)
    # also after the command, as the docs write it (`doppel jobs -v`); SUPPRESS keeps a `doppel -v jobs` intact
    p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="show each job's log tail")
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
    _lifecycle_parsers(av, "avatar")
    a = av.add_parser("render", help="render an avatar speaking an audio file to MP4")
    a.add_argument("name")
    a.add_argument("--audio", required=True)
    a.add_argument("--text", help="burned in as subtitles when DOPPEL_AVATAR_SUBTITLES is on")
    a.add_argument("--out", required=True)
    p.set_defaults(run=cmd_avatars)

    p = sub.add_parser("geneface", help="GeneFace++ engine administration")
    gf = p.add_subparsers(dest="geneface_cmd", required=True)
    for name, text in (("fetch-assets", "download HuBERT, vgg19 and VGG-Face once (checksums checked) into the assets folder"),
                       ("check-assets", "say what the assets folder still lacks")):
        a = gf.add_parser(name, help=text)
        a.add_argument("--dir", help="default: DOPPEL_GENEFACE_ASSETS_DIR or DATA_DIR/geneface-assets")
        if name == "fetch-assets":
            a.add_argument("--mirror", help="a base URL serving the same relative paths, instead of the upstream URLs")
    p.set_defaults(run=cmd_geneface)

    p = sub.add_parser("engines", help="the reply engines on a Ray cluster (DOPPEL_RAY_ADDRESS): deploy them, or show them")
    en = p.add_subparsers(dest="engines_cmd", required=True)
    a = en.add_parser("serve", help="deploy (or update) the engine deployments; bots with DOPPEL_ENGINES=ray then use them")
    a.add_argument("--config", help="replicas, autoscaling and resources per deployment (default: DOPPEL_RAY_CONFIG "
                                    "or deploy/engines.yaml)")
    en.add_parser("status", help="each deployment's state and replicas")
    p.set_defaults(run=cmd_engines)

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
    # the long-running commands log at INFO (one line per answered message, start-up); one-shot ones stay quiet
    serving = args.cmd in ("telegram", "discord", "web", "worker")
    logging.basicConfig(level=logging.INFO if args.verbose or serving else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if serving and not args.verbose:
        for chatty in ("aiogram.event", "httpx", "discord.gateway", "discord.client"):
            logging.getLogger(chatty).setLevel(logging.WARNING)
    try:
        return asyncio.run(args.run(args)) or 0
    except DoppelError as exc:
        print(f"doppel: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # settings, files and the database fail with one line, not a traceback
        message = _one_line(exc)
        if message is None:
            raise
        print(f"doppel: {message}", file=sys.stderr)
        return 2


def _one_line(exc: Exception) -> str | None:
    """What a user can act on, for the failures that come from outside the code: None for anything else."""
    from pydantic import ValidationError
    from sqlalchemy.exc import DBAPIError

    from bot.startup import from_validation

    if isinstance(exc, ValidationError):
        return from_validation(exc).message
    if isinstance(exc, DBAPIError):
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        return (f"the database cannot be used: {reason} (DOPPEL_DATABASE_URL, or doppel.db in DOPPEL_DATA_DIR; "
                "see docs/architecture.md)")
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror or exc}{where}"
    return None


if __name__ == "__main__":
    sys.exit(main())
