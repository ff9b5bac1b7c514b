"""The engines' Serve configuration (deploy/engines.yaml, or DOPPEL_RAY_CONFIG): replicas, autoscaling, resources."""
from __future__ import annotations

from typing import Any

import copy
from dataclasses import dataclass
from pathlib import Path

import yaml

from core.errors import BadInput

SHIPPED = Path(__file__).with_name("engines.yaml")
DEPLOYMENTS = ("SpeechRecognition", "ChatModel", "SpeechSynthesis", "VoiceConversion", "AvatarRendering")
MULTIPLEXED = ("VoiceConversion", "AvatarRendering")
# Serve's deployment options a config may set; anything else is a typo that would otherwise be ignored
SERVE_OPTIONS = {"num_replicas", "autoscaling_config", "max_ongoing_requests", "max_queued_requests", "ray_actor_options",
                 "health_check_period_s", "health_check_timeout_s", "graceful_shutdown_timeout_s"}
OURS = {"max_models_per_replica"}


@dataclass(frozen=True)
class EnginesConfig:
    app: str
    deployments: dict[str, dict[str, Any]]

    def options(self, name: str) -> dict[str, Any]:
        """What goes to Serve's `.options()` for this deployment."""
        return {k: copy.deepcopy(v) for k, v in self.deployments.get(name, {}).items() if k in SERVE_OPTIONS}

    def models_per_replica(self, name: str) -> int:
        return int(self.deployments.get(name, {}).get("max_models_per_replica", 3))

    def cpus_needed(self) -> float:
        """Logical CPUs the deployments reserve at their starting replica counts."""
        total = 0.0
        for name in DEPLOYMENTS:
            options = self.options(name)
            replicas = (options.get("autoscaling_config") or {}).get("min_replicas", options.get("num_replicas", 1))
            total += replicas * float(options.get("ray_actor_options", {}).get("num_cpus", 1))
        return total

    def with_replicas(self, replicas: int) -> "EnginesConfig":
        """Every engine at a fixed replica count, autoscaling off: what bench/scale.py compares."""
        fixed = {}
        for name in DEPLOYMENTS:
            entry = {k: v for k, v in copy.deepcopy(self.deployments.get(name, {})).items() if k != "autoscaling_config"}
            fixed[name] = {**entry, "num_replicas": replicas}
        return EnginesConfig(self.app, fixed)

    def with_actor_options(self, **options: Any) -> "EnginesConfig":
        """The same deployments asking for other resources (a test on 2 cores asks for none)."""
        changed = copy.deepcopy(self.deployments)
        for name in DEPLOYMENTS:
            changed.setdefault(name, {}).setdefault("ray_actor_options", {}).update(options)
        return EnginesConfig(self.app, changed)


def load_config(path: Path | None = None) -> EnginesConfig:
    """Checked as it is read: an unknown deployment or option is refused, naming it and the file."""
    path = Path(path) if path else SHIPPED
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise BadInput(f"DOPPEL_RAY_CONFIG: {path} cannot be read ({exc.strerror or exc}).") from None
    except yaml.YAMLError as exc:
        raise BadInput(f"DOPPEL_RAY_CONFIG: {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    deployments = data.get("deployments") if isinstance(data, dict) else None
    if not isinstance(deployments, dict):
        raise BadInput(f"DOPPEL_RAY_CONFIG: {path} needs a 'deployments' mapping.")
    for name, entry in deployments.items():
        if name not in DEPLOYMENTS:
            raise BadInput(f"DOPPEL_RAY_CONFIG: {path}: unknown deployment '{name}'; use {', '.join(DEPLOYMENTS)}.")
        if entry is not None and not isinstance(entry, dict):
            raise BadInput(f"DOPPEL_RAY_CONFIG: {path}: {name} needs a mapping of options.")
        unknown = set(entry or {}) - SERVE_OPTIONS - OURS
        if unknown:
            raise BadInput(f"DOPPEL_RAY_CONFIG: {path}: {name} has unknown option(s) {', '.join(sorted(unknown))}.")
        if "max_models_per_replica" in (entry or {}) and name not in MULTIPLEXED:
            raise BadInput(f"DOPPEL_RAY_CONFIG: {path}: max_models_per_replica is for {' and '.join(MULTIPLEXED)} only.")
    return EnginesConfig(str(data.get("app") or "doppel-engines"), {k: dict(v or {}) for k, v in deployments.items()})
