"""The voice service: engines loaded once, conversions run one at a time off the event loop.

The same object serves an in-process client directly and the socket server (RVC/server.py).
"""
from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from core.errors import BadInput, DoppelError, EngineError

if TYPE_CHECKING:
    from adapters.tts_piper import PiperSynthesizer

log = logging.getLogger(__name__)


def resolve_device(requested: str) -> tuple[str, str]:
    """The device the engines will really use, and a warning when that is not the one asked for: a worker
    asked for a GPU that silently ran on the CPU would only look several times slower, for no visible reason."""
    if not requested.startswith("cuda"):
        return requested, ""
    import torch

    if torch.cuda.is_available():
        return requested, ""
    why = ("this torch is a CPU-only build" if torch.version.cuda is None
           else "torch sees no CUDA device (is the GPU passed to the container?)")
    return "cpu", f"asked for the GPU ({requested}) but {why}, torch {torch.__version__}: running on the CPU, several times slower"


class Engine(Protocol):
    name: str

    def convert(self, samples: np.ndarray, rate: int, params: dict) -> tuple[np.ndarray, int]: ...


@dataclass
class ServiceConfig:
    cache_dir: Path = Path("var/cache")
    models_dir: Path = Path("RVC/models")
    threads: int = 2
    device: str = "cpu"  # rvc runs on "cuda" inside the GPU container
    lite_runtime: str = "auto"  # RVC/lite_runtime.py; "torch" where a process converts once and exits


class VoiceService:
    def __init__(self, config: ServiceConfig | None = None) -> None:
        self.config = config or ServiceConfig()
        self.device, self.device_warning = resolve_device(self.config.device)
        if self.device_warning:
            log.error("VOICE WORKER ON THE WRONG DEVICE: %s", self.device_warning)
        self.started = time.time()
        self.served = 0
        self._engines: dict[str, Engine] = {}
        self._content = None
        self._tts: PiperSynthesizer | None = None
        # a thread lock, not an asyncio one: one service may serve several event loops (tests, bots) in turn
        self._lock = threading.Lock()

    # ---- engines, built on first use and kept ----

    def _shared_content(self):
        if self._content is None:
            from RVC.features import bundled_content

            self._content = bundled_content(self.config.cache_dir, self.config.threads)
        return self._content

    def engine(self, name: str) -> Engine:
        if name not in self._engines:
            if name == "lite":
                from RVC.engines.lite import LiteEngine

                self._engines[name] = LiteEngine(self._shared_content(), self.config.threads, self.config.lite_runtime)
            elif name == "rvc":
                from RVC.engines.rvc import RvcEngine

                self._engines[name] = RvcEngine(self.config.models_dir, self.device, self.config.threads)
            elif name == "cosyvoice":
                from RVC.engines.cosyvoice import CosyVoiceEngine

                self._engines[name] = CosyVoiceEngine(self.config.models_dir, self.device)
            else:
                raise BadInput(f"There is no voice engine called '{name}'.")
        return self._engines[name]

    def describe(self) -> dict:
        from RVC.engines.cosyvoice import available as cosy_available

        engines = {"lite": {"trained": True, "languages": ["any"]}, "rvc": {"models_dir": str(self.config.models_dir)}}
        if cosy_available():
            engines["cosyvoice"] = {"zero_shot": True}
        return {"name": "doppel-voice", "version": 1, "pid": os.getpid(), "engines": engines, "pcm": {"width": 2, "channels": 1},
                **self._device_report()}

    def _device_report(self) -> dict:
        report = {"device": self.device}
        if self.device_warning:
            report["device_warning"] = self.device_warning
        return report

    def health(self) -> dict:
        health = {"uptime": round(time.time() - self.started, 1), "served": self.served, "loaded": sorted(self._engines),
                  **self._device_report()}
        lite = self._engines.get("lite")
        if lite is not None:
            from RVC.engines.lite import LiteEngine

            assert isinstance(lite, LiteEngine)
            health["lite_runtimes"] = lite.runtimes()
        return health

    def _speak(self, text: str, language: str) -> tuple[np.ndarray, int]:
        if self._tts is None:
            from adapters.tts_piper import PiperSynthesizer, bundled_voice

            self._tts = PiperSynthesizer(*bundled_voice(), threads=self.config.threads)
        audio = self._tts.synthesize_sync(text, language)
        return audio.samples, audio.sample_rate

    def convert_sync(self, engine: str, params: dict, samples: np.ndarray | None, rate: int, text: str | None = None,
                     language: str = "en") -> tuple[np.ndarray, int]:
        if samples is None or samples.size == 0:
            if not text:
                raise BadInput("Nothing to convert: send audio or text.")
            samples, rate = self._speak(text, language)
        try:
            out, out_rate = self.engine(engine).convert(samples, rate, params)
        except DoppelError:
            raise
        except Exception as exc:  # an engine's own failure: the service stays up, the caller gets a clear error
            raise EngineError(f"The {engine} voice engine failed on this sentence.", detail=repr(exc)) from exc
        self.served += 1
        return out, out_rate

    async def convert(self, engine: str, params: dict, samples: np.ndarray | None, rate: int, text: str | None = None,
                      language: str = "en") -> tuple[np.ndarray, int]:
        return await asyncio.to_thread(self._one_at_a_time, engine, params, samples, rate, text, language)

    def _one_at_a_time(self, *args) -> tuple[np.ndarray, int]:
        with self._lock:  # two cores gain nothing from two conversions at once
            return self.convert_sync(*args)
