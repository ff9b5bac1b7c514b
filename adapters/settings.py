"""All configuration, from the environment and `.env` (see .env.example). Every external URL is settable."""
from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from typing import Annotated


def _id_list(value: object) -> object:
    if isinstance(value, str):
        return [int(v) for v in value.replace(";", ",").split(",") if v.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DOPPEL_", env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # storage
    data_dir: Path = Path("var")
    database_url: str = ""  # empty: sqlite+aiosqlite in data_dir
    # bot replicas on one database: a replica that has not renewed its claim on a message for this long is taken
    # for dead, and another one answers the message
    replica_lease_seconds: float = 30.0

    # dialogue
    persona: str = "default"
    personas_dir: Path | None = None  # extra persona files beside the shipped ones
    language: str = "en"  # the users' language until they choose (/language); "auto" detects it
    # the languages users here speak and hear spoken: detection picks among these (a short clip is not taken for
    # Hindi); each has a voice Whisper reads back within 15 % (bench/language.py --part voices, docs/languages.md)
    languages: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["en", "zh", "fr", "es", "de", "it", "ru"])
    # languages users may write or speak that no voice here speaks understandably yet: detected too, answered in
    # text, with a note saying so once per chat
    text_languages: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["pt", "ja"])
    max_input_seconds: float = 120.0
    max_text_chars: int = 2000  # a typed message longer than this is refused
    history_token_budget: int = 1200
    threads: int = 2

    # where the engines run: "local" (in this process) or "ray" (Ray Serve deployments, deploy/)
    engines: str = "local"
    ray_address: str = ""  # ray://host:10001 or auto; empty: a Ray of this machine, started with the bot, on 127.0.0.1
    ray_config: Path | None = None  # replicas, autoscaling and resources per deployment; empty: deploy/engines.yaml

    # speech recognition
    asr_beam_size: int = 5  # tiny.en; beam 5: 18 % fewer errors than greedy on the 351 shared clips, ~1.1x its CPU
    asr_multilingual_beam_size: int = 5  # Whisper base, every other language (bench/language.py)
    asr_multilingual: bool = True

    # language models: local | openai | zhipu | gemini; fallbacks are tried in order when one fails
    llm_provider: str = "local"
    llm_model: str = ""
    llm_fallback: Annotated[list[str], NoDecode] = Field(default_factory=list)
    llm_temperature: float = 0.7
    llm_max_tokens: int = 160
    llm_timeout: float = 60.0
    llm_retries: int = 2
    # languages the model writes well, preferred first; empty: the bundled model writes English only, others any
    llm_languages: Annotated[list[str], NoDecode] = Field(default_factory=list)
    local_model_path: Path | None = None  # a GGUF file; empty: the bundled SmolLM2
    openai_base_url: str = "https://api.openai.com/v1"
    openai_api_key: SecretStr = SecretStr("")
    zhipu_base_url: str = "https://open.bigmodel.cn/api/paas/v4/"
    zhipu_api_key: SecretStr = SecretStr("")
    gemini_base_url: str = ""
    gemini_api_key: SecretStr = SecretStr("")

    # voices
    voice: str = ""  # default voice name; empty: the base synthesizer
    voice_worker: str = "inprocess"  # inprocess | subprocess | docker
    rvc_models_dir: Path = Path("RVC/models")
    # -- voice cloning worker (RVC/) --
    voice_socket: Path | None = None  # the subprocess worker's Unix socket; empty: data_dir/voice.sock
    voice_docker_image: str = "doppel-voice:latest"  # built from RVC/Dockerfile
    voice_docker_port: int = 10300  # published on 127.0.0.1 only
    voice_gpus: str = "all"  # GPUs the container gets: all, none (""), or ids "0,1"
    # lite training: "full" (needs 30 s of speech) or "tiny" (2 s; quick, for trying things out and tests)
    voice_train_profile: str = "full"
    # score every trained lite voice and refuse one below the limits (RVC/quality_gate.py); off: voices go live unscored
    voice_quality_gate: bool = True

    # avatars
    avatar: str = ""
    avatar_min_seconds: float = 20.0  # shortest training video accepted
    avatar_gpu: int | None = None  # render on this CUDA device when there is one; None: CPU
    avatar_subtitles: bool = False  # burn the answer text into the video
    avatar_live_size: int = 512  # live talk's video track: the longer side of its frames, px
    geneface_image: str = "doppel/geneface:latest"  # built from geneface/Dockerfile
    # -- GeneFace++ containers (geneface/) --
    geneface_assets_dir: Path | None = None  # HuBERT, vgg19, VGG-Face, BFM, audio2motion_vae; empty: data_dir/geneface-assets
    geneface_gpus: str = "0"  # GPU ids: training jobs without --gpu use the first; one render container per id
    geneface_render_port: int = 10400  # the render container of the i-th GPU listens on 127.0.0.1:port+i
    docker_url: str = ""  # empty: the local Docker engine (DOCKER_HOST or its socket)

    # telegram
    telegram_token: SecretStr = SecretStr("")
    telegram_api_url: str = "https://api.telegram.org"
    telegram_webhook_url: str = ""
    telegram_webhook_host: str = "127.0.0.1"
    telegram_webhook_port: int = 8080
    telegram_max_download: int = 20 * 1024 * 1024
    # -- telegram bot (bot/telegram) --
    telegram_api_local: bool = False  # telegram_api_url is a local Bot API server (--local): big files, read from its disk
    telegram_webhook_secret: SecretStr = SecretStr("")  # checked on every webhook call; empty: derived from the token
    telegram_poll_timeout: int = 25  # long-polling seconds
    telegram_max_waiting: int = 5  # a user's messages that may wait behind their running reply
    telegram_replies_at_once: int = 3  # answers made at the same time, all users together (0: no cap)
    telegram_progress_interval: float = 3.0  # seconds between job status edits (Telegram limits edits)

    # discord
    discord_token: SecretStr = SecretStr("")
    discord_api_url: str = "https://discord.com/api/v10"
    discord_gateway_url: str = ""
    # -- discord bot (bot/discord) --
    discord_max_download: int = 25 * 1024 * 1024  # largest attachment the bot downloads
    discord_max_waiting: int = 5  # a user's messages that may wait behind their running reply
    discord_progress_interval: float = 5.0  # seconds between job status edits
    discord_sync_guild: int = 0  # sync slash commands to this guild only (instant while developing); 0: global
    discord_replies_at_once: int = 3  # answers made at the same time, all users together (0: no cap)
    # one process per shard: this one's shard of discord_shard_count (0: one process gets every event)
    discord_shard_count: int = 0
    discord_shard_id: int = 0

    # training jobs: "local" runs them in `doppel worker`; "ray" runs each in an actor on the Ray cluster
    jobs: str = "local"
    # where jobs keep checkpoints and prepared data: a folder every node shares, or a URL (s3://bucket/doppel ...);
    # empty: DATA_DIR (jobs/N under it, as a local worker keeps them)
    artifacts: str = ""
    ray_job_cpus: float = 1.0  # CPUs each training actor reserves
    ray_job_gpus: float = 1.0  # GPUs a job that asked for one (--gpu) reserves; 0 trains those on CPUs too
    ray_job_retries: int = 3  # times a job moves to another node after losing its own, before it fails

    # access
    admin_ids: Annotated[list[int], NoDecode] = Field(default_factory=list)
    allowed_ids: Annotated[list[int], NoDecode] = Field(default_factory=list)  # empty: everyone
    rate_limit_per_minute: int = 12
    reply_voice_to_text: bool = False  # answer typed messages with voice too

    # web
    web_host: str = "127.0.0.1"
    web_port: int = 5000
    web_admin_password: SecretStr = SecretStr("")
    web_secret: SecretStr = SecretStr("")  # signs session cookies; empty: a random one per start (logins end on restart)
    web_max_audio_bytes: int = 20 * 1024 * 1024  # one chat recording or voice reference clip
    web_max_video_bytes: int = 200 * 1024 * 1024  # one avatar training video
    web_max_model_bytes: int = 300 * 1024 * 1024  # one RVC model or index file
    web_replies_at_once: int = 2  # answers made at the same time, all visitors together (0: no cap)
    web_max_in_line: int = 100  # answers waiting for a turn; past it a visitor is told the bot is busy
    # the limit is per visitor (rate_limit_per_minute); these caps on one client address are for cookie droppers,
    # and set well above it, since an office or a school shares one address among many visitors
    web_rate_limit_per_address: int = 120  # turns a minute from one client address, whatever its cookies
    web_new_visitors_per_address: int = 60  # new visitors (cookies) from one address at once, then one a minute (0: no cap)
    web_trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)  # their X-Forwarded-For is believed
    web_secure_cookie: bool = False  # always mark the session cookie Secure (it is anyway over https)

    # live talk on the web page (WebRTC)
    live_max_sessions: int = 4  # live conversations at once; past it a new one is refused
    live_end_of_utterance: float = 0.5  # seconds of silence that end what the person says
    live_partial_seconds: float = 1.0  # a partial transcript at most this often while they speak (0: none)
    live_idle_seconds: float = 3.0  # no audio from the browser this long ends the session

    @field_validator("admin_ids", "allowed_ids", mode="before")
    @classmethod
    def _ids(cls, value: object) -> object:
        return _id_list(value)

    @property
    def heard_languages(self) -> list[str]:
        """Every language detection picks among: the spoken ones, then those answered in text only."""
        return self.languages + [code for code in self.text_languages if code not in self.languages]

    @field_validator("languages", "text_languages", "llm_languages", mode="before")
    @classmethod
    def _codes(cls, value: object) -> object:
        if isinstance(value, str):
            return [v.strip().lower() for v in value.replace(";", ",").split(",") if v.strip()]
        return value

    @field_validator("llm_fallback", "web_trusted_proxies", mode="before")
    @classmethod
    def _names(cls, value: object) -> object:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'doppel.db'}"

    @property
    def geneface_gpu_list(self) -> list[int]:
        return [int(g) for g in self.geneface_gpus.replace(";", ",").split(",") if g.strip()] or [0]

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache"
