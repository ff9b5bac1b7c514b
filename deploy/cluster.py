"""Reaching the Ray cluster (DOPPEL_RAY_ADDRESS), deploying the engine graph on it, and the engines a bot gets from it."""
from __future__ import annotations

import math
import os
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from core.errors import StartupError
from deploy.config import DEPLOYMENTS, EnginesConfig, load_config

if TYPE_CHECKING:
    from ray.serve.handle import DeploymentHandle

    from adapters.settings import Settings
    from adapters.engines import Engines
    from core.ports import AvatarRenderer
    from deploy.clients import RayAvatarRenderer
    from storage.avatars import AvatarRepository

T = TypeVar("T")

DOC = "docs/cluster.md"
# training actors are named per job (bot/ray_worker.py): a restarted worker finds them only in the same namespace
NAMESPACE = "doppel"


def connect(settings: Settings, config: EnginesConfig | None = None) -> bool:
    """Joins the cluster at DOPPEL_RAY_ADDRESS (`ray://host:10001`, `auto`), or with none starts a Ray of this
    machine on 127.0.0.1 that lives as long as this process. True when this process started it.

    A Ray of this machine counts at least the CPUs the config's replicas reserve: they share its cores, as the
    engines do in one process, rather than wait for cores it does not have."""
    import ray

    if ray.is_initialized():
        return False
    address = settings.ray_address.strip()
    try:
        if address:
            ray.init(address=address, namespace=NAMESPACE, log_to_driver=False)
            return False
        local_ray_environment()
        cpus = max(float(os.cpu_count() or 1), config.cpus_needed() if config is not None else 0.0)
        ray.init(address="local", num_cpus=math.ceil(cpus), _node_ip_address="127.0.0.1", include_dashboard=False,
                 namespace=NAMESPACE, log_to_driver=False)
        return True
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise StartupError(f"no Ray cluster could be reached at '{address or 'local'}': {str(exc).splitlines()[0]}",
                           setting="DOPPEL_RAY_ADDRESS", doc=DOC) from None


def local_ray_environment() -> None:
    """Ray starts its worker processes at nice 15, below everything else on the machine: on a shared machine the
    replicas, which make every reply, would wait behind any other process while the in-process engines would not.
    A Ray started here runs them at the bot's own priority; `ray start` takes the same variable."""
    os.environ.setdefault("RAY_worker_niceness", "0")


def config_of(settings: Settings) -> EnginesConfig:
    return load_config(settings.ray_config)


def deploy(settings: Settings, config: EnginesConfig, timeout: float = 600.0) -> None:
    """Deploys (or updates in place) the engine graph; returns when every deployment has its replicas running."""
    from ray import serve

    from deploy.graph import build_app

    serve.start(proxy_location="Disabled")  # the engines are reached through handles only: no HTTP ingress
    app = build_app(settings, config)
    # serve.run waits for every replica however long that takes (for ever, for a GPU the cluster does not have):
    # it runs aside, and a deployment still not running after the deadline is reported with Serve's own reason
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            serve.run(app, name=config.app, route_prefix=None)
            outcome["done"] = True
        except BaseException as exc:  # reported below
            outcome["error"] = exc

    threading.Thread(target=run, name="serve-run", daemon=True).start()
    deadline = time.monotonic() + timeout
    while "done" not in outcome and "error" not in outcome and time.monotonic() < deadline:
        time.sleep(0.5)
    if "error" in outcome:
        raise StartupError(f"the engines could not be deployed: {str(outcome['error']).splitlines()[0]}",
                           setting="DOPPEL_RAY_CONFIG", doc=DOC)
    if "done" not in outcome:
        waiting = [line for line in status_lines(config.app, messages=True)[1:] if " healthy:" not in line]
        raise StartupError(f"the engines were not running after {timeout:.0f} s: " + "; ".join(w.strip() for w in waiting),
                           setting="DOPPEL_RAY_CONFIG", doc=DOC)


def running(app: str) -> bool:
    from ray import serve

    return app in serve.status().applications


def handles(app: str) -> dict[str, DeploymentHandle[Any]]:
    from ray import serve

    return {name: serve.get_deployment_handle(name, app_name=app) for name in DEPLOYMENTS}


def _blocking(call: Callable[[], T]) -> T:
    """A handle's blocking `.result()` may not run on an event loop's thread; start-up may be on one."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = call()
        except BaseException as exc:  # handed back to the caller below
            box["error"] = exc

    worker = threading.Thread(target=run, name="ray-describe")
    worker.start()
    worker.join()
    if "error" in box:
        raise box["error"]
    value: T = box["value"]
    return value


def ray_engines(settings: Settings) -> Engines:
    """The bot's Engines, every one a client of a deployment. With no DOPPEL_RAY_ADDRESS the graph is deployed on
    a Ray started here; on a cluster it must be deployed already (`doppel engines serve`)."""
    from adapters.engines import Engines, build_synthesizers, build_text_languages
    from core.types import VoiceEngine
    from deploy.clients import RayChatModel, RaySpeechRecognizer, RaySpeechSynthesizer, RayVoiceConverter
    from deploy.wire import arrived
    from RVC.engines.cosyvoice import available as cosyvoice_available

    config = config_of(settings)
    if connect(settings, config):
        deploy(settings, config)
    elif not running(config.app):
        raise StartupError(f"the Ray cluster has no '{config.app}' application; deploy it first with `doppel engines serve`",
                           setting="DOPPEL_RAY_ADDRESS", doc=DOC)
    h = handles(config.app)
    try:
        info: dict[str, Any] = _blocking(lambda: h["ChatModel"].describe.remote().result())
    except Exception as exc:
        raise arrived(exc) from exc
    converter = RayVoiceConverter(h["VoiceConversion"])
    engines = [VoiceEngine.LITE, VoiceEngine.RVC] + ([VoiceEngine.COSYVOICE] if cosyvoice_available() else [])
    return Engines(
        recognizer=RaySpeechRecognizer(h["SpeechRecognition"]), chat_model=RayChatModel(h["ChatModel"], info),
        synthesizers=[RaySpeechSynthesizer(h["SpeechSynthesis"], build_synthesizers(settings))],
        converters={engine: converter for engine in engines}, renderer=None, text_languages=build_text_languages(settings),
    )


def ray_renderer(settings: Settings, avatars: AvatarRepository, local: AvatarRenderer) -> RayAvatarRenderer:
    """The avatar renderer on the AvatarRendering deployment (built per Services, as it reads the avatars' records)."""
    from deploy.clients import RayAvatarRenderer

    connect(settings)
    return RayAvatarRenderer(avatars, handles(config_of(settings).app)["AvatarRendering"], local)


def config_lines(config: EnginesConfig) -> list[str]:
    """Each deployment's replicas and resources, as `doppel engines serve` prints them."""
    lines = []
    for name in DEPLOYMENTS:
        options = config.options(name)
        scaling = options.get("autoscaling_config")
        replicas = (f"{scaling.get('min_replicas', 1)}-{scaling.get('max_replicas', 1)} replicas "
                    f"(target {scaling.get('target_ongoing_requests', 2)} ongoing)") if scaling else \
            f"{options.get('num_replicas', 1)} replica(s)"
        actor = options.get("ray_actor_options", {})
        models = f", {config.models_per_replica(name)} models each" if name in ("VoiceConversion", "AvatarRendering") else ""
        lines.append(f"  {name:<18} {replicas}, {actor.get('num_cpus', 1)} CPU, {actor.get('num_gpus', 0)} GPU{models}")
    return lines


def status_lines(app: str, messages: bool = False) -> list[str]:
    """The application's deployments as Serve reports them: status and replicas by state (and why, with messages)."""
    from ray import serve

    found = serve.status().applications.get(app)
    if found is None:
        return [f"no '{app}' application on this cluster (deploy it with `doppel engines serve`)"]
    lines = [f"{app}: {_word(found.status)}"]
    for name, deployment in sorted(found.deployments.items()):
        states = ", ".join(f"{count} {_word(state).lower()}" for state, count in deployment.replica_states.items() if count)
        why = f" ({deployment.message.splitlines()[0]})" if messages and deployment.message else ""
        lines.append(f"  {name:<18} {_word(deployment.status).lower()}: {states or 'no replicas'}{why}")
    return lines


def _word(status: object) -> str:
    return str(getattr(status, "value", status))


def remote_cluster(settings: Settings) -> None:
    """`doppel engines serve|status` talk to a cluster that outlives them: with no address there is none."""
    if not settings.ray_address.strip():
        raise StartupError("empty: name the cluster to deploy on (`auto` on a node of it, after `ray start --head`, "
                           "or ray://HEAD:10001)", setting="DOPPEL_RAY_ADDRESS", doc=DOC)
    connect(settings)
