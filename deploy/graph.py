"""The deployment graph: five engine deployments behind one small entry deployment, as one Serve application.

    EngineGraph (entry, no CPU) ─┬─ SpeechRecognition        Whisper
                                 ├─ ChatModel                streams tokens
                                 ├─ SpeechSynthesis          base TTS by language
                                 ├─ VoiceConversion          multiplexed per voice
                                 └─ AvatarRendering          multiplexed per avatar, num_gpus per replica

Bots call each engine deployment through its own handle (deploy/clients.py), so no request passes the entry.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from ray import serve
from ray.serve import Application, Deployment
from ray.serve.handle import DeploymentHandle

from deploy.asr import SpeechRecognition
from deploy.avatars import AvatarRendering
from deploy.config import EnginesConfig
from deploy.llm import ChatModel
from deploy.speech import SpeechSynthesis
from deploy.voices import VoiceConversion
from deploy.wire import settings_values

if TYPE_CHECKING:
    from adapters.settings import Settings


@serve.deployment(ray_actor_options={"num_cpus": 0})
class EngineGraph:
    """Serve's entry for the application: an application has one, and binding the engines to it deploys them."""

    def __init__(self, *engines: DeploymentHandle[Any]) -> None:
        self.engines = engines


def _options(config: EnginesConfig, name: str, threads: int) -> dict[str, Any]:
    """Serve's options from the config, and the replicas' OpenMP settings. A replica computes with DOPPEL_THREADS
    threads, as the engines do in-process (Ray would set OMP_NUM_THREADS to the replica's CPU reservation, 1 when it
    reserves none). Waiting OpenMP threads sleep instead of spinning: llama.cpp's spinning threads burnt 15-30
    CPU-seconds on one reply when the cores were shared with other processes (bench/scale.py, 2 loaded cores),
    against about 1 s asleep."""
    options = config.options(name)
    actor = options.setdefault("ray_actor_options", {})
    env = actor.setdefault("runtime_env", {}).setdefault("env_vars", {})
    env.setdefault("OMP_NUM_THREADS", str(threads))
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return options


def _deployment(made: object) -> Deployment:
    """What @serve.deployment made of a class: a Deployment, though Ray's annotations say the class comes back."""
    return cast(Deployment, made)


def build_app(settings: Settings, config: EnginesConfig) -> Application:
    values = settings_values(settings)

    def options(name: str) -> dict[str, Any]:
        return _options(config, name, settings.threads)

    asr = _deployment(SpeechRecognition).options(**options("SpeechRecognition")).bind(values)
    llm = _deployment(ChatModel).options(**options("ChatModel")).bind(values)
    tts = _deployment(SpeechSynthesis).options(**options("SpeechSynthesis")).bind(values)
    voices = _deployment(VoiceConversion).options(**options("VoiceConversion")).bind(values, config.models_per_replica("VoiceConversion"))
    avatars = _deployment(AvatarRendering).options(**options("AvatarRendering")).bind(values, config.models_per_replica("AvatarRendering"))
    return _deployment(EngineGraph).bind(asr, llm, tts, voices, avatars)
