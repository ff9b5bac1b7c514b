"""A base that has heard many voices (issue 23): every voice the project may use, real and synthetic, as one set.

The shipped base heard two real people, and a voice is only as good for a new person as the base's idea of what a
voice can be. This builder gathers, a few minutes each:
- real people: Debian's asterisk core sounds in Spanish and French (RVC/debian_speech.py; the development speakers and
  the Italian and Russian core sounds are refused there; the English ones are the demo voice's, kept out);
- synthetic speakers: Piper (en), Pico (fr, es, de, it), every Festival voice installed (`festvox-*`) and eSpeak NG
  in six languages, eSpeak and Pico also with their pitch and formants moved (the audio resampled by 0.85 and 1.18:
  a deeper and a higher speaker), each counted as a speaker of its own.
Texts: the core sounds' own transcripts (en, es, fr; the scored English sentences left out) and, for languages
without one here, sentences drawn from a word list; never bench/new_speakers_text.py's sentences.

    python -m RVC.base_corpus sources                               # what would be used, and what is refused
    python -m RVC.base_corpus build --out-dir .lite-data [--minutes 3]   # CPU host → many.npz, replay.npz

The set is projected with the shipped base's content projection, so a base trained on it is still the base every
stored voice was fine-tuned from (RVC/lite_base.py, "Training the base across sessions").
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import random
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from RVC.debian_speech import WORD_FOLDERS, check_allowed, package_audio, read_audio

ROOT = Path(__file__).resolve().parent.parent
EN_SPLIT = Path(__file__).resolve().parent / "data" / "en_split.json"
# the English core sounds are the demo voice's recordings: kept out, as the shipped base kept them out, so the demo
# voice stays a control of what fine-tuning does rather than of what the base heard (her Spanish is in, as before)
REAL = (("asterisk-core-sounds-es-wav", "es"), ("asterisk-core-sounds-fr-wav", "fr"))
TRANSCRIPTS = {"en": "asterisk-core-sounds-en", "es": "asterisk-core-sounds-es", "fr": "asterisk-core-sounds-fr"}
SHIFTS = (0.85, 1.18)  # resampling factors that make a synthetic voice a deeper and a higher speaker
# Festival voice → language, for the voices Debian packages (festvox-*); others found are skipped
FESTIVAL = {"lp_diphone": "it", "pc_diphone": "it", "msu_ru_nsh_clunits": "ru", "kal_diphone": "en", "ked_diphone": "en",
            "cmu_us_slt_arctic_hts": "en", "czech_dita": "cs", "czech_machac": "cs", "czech_krb": "cs", "czech_ph": "cs",
            "suo_fi_lj_diphone": "fi", "hy_fi_mv_diphone": "fi", "upc_ca_ona_hts": "ca"}
FESTIVAL_ENCODING = {"it": "latin-1", "cs": "iso-8859-2", "fi": "latin-1", "ca": "latin-1"}
ESPEAK = ("en", "fr", "es", "it", "de", "ru")
# languages with no transcripts here: sentences of words drawn from these lists (the base learns sounds, not grammar)
WORDS = {
    "it": ("casa tempo strada acqua luce notte giorno mano cuore parola sole mare città amico lavoro scuola porta "
           "finestra tavolo libro gatto cane fiore albero montagna fiume verde rosso bianco nero piccolo grande "
           "bello nuovo vecchio sempre quando perché dove come molto poco ancora subito domani ieri oggi sera "
           "mattina treno stazione biglietto chiave telefono messaggio numero risposta domanda famiglia figlio "
           "sorella fratello padre madre scrivere leggere parlare sentire vedere aprire chiudere partire tornare "
           "mangiare bere dormire giocare cercare trovare pensare ricordare chiedere rispondere gli sci zucchero "
           "pizza ghiaccio giallo sbaglio chiesa gnocchi svegliarsi").split(),
    "de": ("Haus Zeit Straße Wasser Licht Nacht Tag Hand Herz Wort Sonne Meer Stadt Freund Arbeit Schule Tür Fenster "
           "Tisch Buch Katze Hund Blume Baum Berg Fluss grün rot weiß schwarz klein groß schön neu alt immer wann warum "
           "wo wie sehr wenig noch sofort morgen gestern heute Abend Zug Bahnhof Karte Schlüssel Telefon Nachricht "
           "Nummer Antwort Frage Familie Sohn Schwester Bruder Vater Mutter schreiben lesen sprechen hören sehen "
           "öffnen schließen fahren kommen essen trinken schlafen spielen suchen finden denken fragen Brücke Zwiebel "
           "Mädchen Küche fünf zwölf Pflanze").split(),
    "ru": ("дом время улица вода свет ночь день рука сердце слово солнце море город друг работа школа дверь окно "
           "стол книга кошка собака цветок дерево гора река зелёный красный белый чёрный маленький большой красивый "
           "новый старый всегда когда почему где как очень мало ещё сразу завтра вчера сегодня вечер поезд вокзал "
           "билет ключ телефон сообщение номер ответ вопрос семья сын сестра брат отец мать писать читать говорить "
           "слышать видеть открыть закрыть ехать идти есть пить спать играть искать найти думать щётка жёлтый "
           "счастье объявление").split(),
    "cs": "dům čas ulice voda světlo noc den ruka srdce slovo slunce moře město přítel práce škola dveře okno stůl kniha řeka čtyři".split(),
    "fi": "talo aika katu vesi valo yö päivä käsi sydän sana aurinko meri kaupunki ystävä työ koulu ovi ikkuna pöytä kirja".split(),
    "ca": "casa temps carrer aigua llum nit dia mà cor paraula sol mar ciutat amic feina escola porta finestra taula llibre".split(),
}


@dataclass
class Speaker:
    name: str
    language: str
    kind: str  # "real" or "synthetic"
    clips: Callable[[float], list[np.ndarray]]  # minutes → 16 kHz clips, about that much speech


def _held_out_en() -> set[str]:
    split = json.loads(EN_SPLIT.read_text())
    return set(split["eval"]) | set(split["reference"])


def _hashed(items: list, key: Callable[[object], str]) -> list:
    return sorted(items, key=lambda x: hashlib.sha256(key(x).encode()).hexdigest())


def _real(package: str) -> Callable[[float], list[np.ndarray]]:
    def clips(minutes: float) -> list[np.ndarray]:
        check_allowed(package)
        held = _held_out_en()
        paths = [p for p in package_audio(package)
                 if p.stem not in held and not WORD_FOLDERS & set(p.parts) and p.suffix == ".wav"]
        out, total = [], 0.0
        for p in _hashed(paths, lambda x: Path(str(x)).name):
            if total >= minutes * 60:
                break
            x = read_audio(p)
            if len(x) >= 16 * 320:
                out.append(x)
                total += len(x) / 16000
        return out
    return clips


def transcripts(language: str) -> list[str]:
    """Sentences to speak in `language`: the core sounds' transcripts (the scored English ones left out), else drawn words."""
    from bench.new_speakers_text import SENTENCES

    scored = {s for texts in SENTENCES.values() for s in texts}
    package = TRANSCRIPTS.get(language)
    doc = Path("/usr/share/doc") / package / f"core-sounds-{language}.txt.gz" if package else None
    if doc is not None and doc.exists():
        held = _held_out_en() if language == "en" else set()
        texts = []
        for line in gzip.decompress(doc.read_bytes()).decode("utf-8", "replace").splitlines():
            name, _, text = line.partition(":")
            if text.strip() and not line.startswith(";") and name.strip().split("/")[-1] not in held:
                texts.append(text.strip())
        return [t for t in _hashed(texts, str) if len(t.split()) >= 3 and t not in scored]
    rng = random.Random(language)
    words = WORDS[language]
    return [" ".join(rng.choice(words) for _ in range(rng.randint(5, 11))).capitalize() + "." for _ in range(400)]


def _spoken(say: Callable[[str], tuple[np.ndarray, int]], language: str, shift: float = 1.0) -> Callable[[float], list[np.ndarray]]:
    from RVC.features import RATE, to_rate

    def clips(minutes: float) -> list[np.ndarray]:
        out, total = [], 0.0
        for text in transcripts(language):
            if total >= minutes * 60:
                break
            samples, rate = say(text)
            if len(samples) < rate // 2:
                continue
            # played back at `shift` times the rate: pitch and formants move together (a different vocal tract)
            x = to_rate(np.asarray(samples, np.float32), int(rate * shift) if shift != 1.0 else rate, RATE)
            pad = np.zeros(RATE // 5, np.float32)  # the recordings open and close with a pause
            out.append(np.concatenate([pad, x, pad]))
            total += len(out[-1]) / RATE
        return out
    return clips


def festival_voices() -> list[str]:
    try:
        with tempfile.NamedTemporaryFile("w", suffix=".scm", delete=False) as f:
            f.write("(print (voice.list))\n")
        out = subprocess.run(["festival", "--batch", f.name], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [v for v in out.strip().strip("()").split() if v in FESTIVAL]


def _festival(voice: str, language: str) -> Callable[[str], tuple[np.ndarray, int]]:
    def say(text: str) -> tuple[np.ndarray, int]:
        with tempfile.TemporaryDirectory() as tmp:
            src, wav = Path(tmp) / "in.txt", Path(tmp) / "out.wav"
            src.write_bytes(text.encode(FESTIVAL_ENCODING.get(language, "utf-8"), "replace"))
            subprocess.run(["text2wave", "-eval", f"(voice_{voice})", str(src), "-o", str(wav)],
                           capture_output=True, timeout=120)
            if not wav.exists() or wav.stat().st_size < 100:
                return np.zeros(0, np.float32), 16000
            x = read_audio(wav)
        return x, 16000
    return say


def speakers() -> list[Speaker]:
    from adapters.tts_espeak import EspeakSynthesizer
    from adapters.tts_pico import VOICES as PICO_LANGUAGES
    from adapters.tts_pico import PicoSynthesizer
    from adapters.tts_piper import PiperSynthesizer, bundled_voice

    found = [Speaker(f"{pkg}", lang, "real", _real(pkg)) for pkg, lang in REAL]
    piper = PiperSynthesizer(*bundled_voice(), threads=2)

    def tts(engine, lang: str) -> Callable[[str], tuple[np.ndarray, int]]:
        def say(text: str) -> tuple[np.ndarray, int]:
            a = engine.synthesize_sync(text, lang)
            return a.samples, a.sample_rate
        return say

    found.append(Speaker("piper-en", "en", "synthetic", _spoken(tts(piper, "en"), "en")))
    pico = PicoSynthesizer()
    for lang in PICO_LANGUAGES:
        for shift in (1.0, *SHIFTS):
            found.append(Speaker(f"pico-{lang}" + (f"-x{shift}" if shift != 1 else ""), lang, "synthetic",
                                 _spoken(tts(pico, lang), lang, shift)))
    espeak = EspeakSynthesizer()
    for lang in ESPEAK:
        for shift in (1.0, *SHIFTS):
            found.append(Speaker(f"espeak-{lang}" + (f"-x{shift}" if shift != 1 else ""), lang, "synthetic",
                                 _spoken(tts(espeak, lang), lang, shift)))
    for voice in festival_voices():
        found.append(Speaker(f"festival-{voice}", FESTIVAL[voice], "synthetic", _spoken(_festival(voice, FESTIVAL[voice]),
                                                                                      FESTIVAL[voice])))
    return found


def build(out_dir: Path, minutes: float, synthetic_minutes: float, cache: Path, replay_seconds: float) -> None:
    from adapters.media import encode_ogg_opus
    from core.types import Audio
    from RVC.features import bundled_content
    from RVC.lite_base import base_projection, load_base
    from RVC.lite_data import build_dataset, compact

    base = load_base()
    if base is None:
        raise SystemExit("RVC/base/lite-base.pt is missing: the set is projected with its content projection")
    t0 = time.perf_counter()
    clips: list[np.ndarray] = []
    owners: list[str] = []
    for speaker in speakers():
        got = speaker.clips(minutes if speaker.kind == "real" else synthetic_minutes)
        clips += got
        owners += [speaker.name] * len(got)
        print(f"  {speaker.name:32} {speaker.language} {speaker.kind:9} {sum(map(len, got)) / 16000 / 60:5.1f} min",
              flush=True)
    # through Opus like the recordings a voice is trained on, and so the set travels at an eighth of its size
    oggs = [encode_ogg_opus(Audio(c, 16000), bitrate=32_000) for c in clips]
    from adapters.media import decode_audio

    clips = [decode_audio(o).samples for o in oggs]
    keep = [i for i, c in enumerate(clips) if len(c) >= 16 * 320]
    clips, oggs, owners = [clips[i] for i in keep], [oggs[i] for i in keep], [owners[i] for i in keep]
    print(f"{len(set(owners))} speakers, {sum(map(len, clips)) / 16000 / 60:.1f} min in {len(clips)} clips "
          f"({time.perf_counter() - t0:.0f} s); features next", flush=True)
    data: dict = build_dataset(clips, bundled_content(cache), 128, projection=base_projection(base), perturbations=(0.8,),
                         progress=lambda i, n: print(f"  features {i}/{n}", flush=True) if i % 200 == 0 else None)
    out_dir.mkdir(parents=True, exist_ok=True)
    packed: dict = dict(compact(data, oggs))
    np.savez(out_dir / "many.npz", **packed)
    # the replay set: the first clips of every speaker, `replay_seconds` each
    picked: list[int] = []
    seen: dict[str, float] = {}
    for i, owner in enumerate(owners):
        if seen.get(owner, 0.0) < replay_seconds:
            picked.append(i)
            seen[owner] = seen.get(owner, 0.0) + len(clips[i]) / 16000
    replay = build_dataset([clips[i] for i in picked], bundled_content(cache), 128, projection=base_projection(base),
                           perturbations=(0.8,))
    packed = dict(compact(replay, [oggs[i] for i in picked]))
    np.savez(out_dir / "replay.npz", **packed)
    print(f"written {out_dir / 'many.npz'} and replay.npz ({len(picked)} clips) in {time.perf_counter() - t0:.0f} s", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("sources", help="the speakers the set would hold")
    b = sub.add_parser("build")
    b.add_argument("--out-dir", default=str(ROOT / ".lite-data"))
    b.add_argument("--minutes", type=float, default=8.0, help="per real speaker")
    b.add_argument("--synthetic-minutes", type=float, default=2.0, help="per synthetic speaker")
    b.add_argument("--replay-seconds", type=float, default=10.0, help="per speaker, in replay.npz")
    b.add_argument("--cache", default=str(ROOT / "var" / "cache"))
    args = ap.parse_args()
    if args.cmd == "sources":
        for s in speakers():
            print(f"{s.name:32} {s.language} {s.kind}")
        return
    build(Path(args.out_dir), args.minutes, args.synthetic_minutes, Path(args.cache), args.replay_seconds)


if __name__ == "__main__":
    main()
