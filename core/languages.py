"""Which language an answer is in: what the user speaks, what the model can write, what the persona asks for.

Codes are Whisper's (ISO 639-1 where there is one): the recognizer is what hears them first.
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Collection, Mapping

from core.errors import BadInput
from core.types import Persona, Transcript

# code → (English name, the language's own name). Whisper's 99 languages plus Cantonese.
NAMES: dict[str, tuple[str, str]] = {
    "en": ("English", "English"), "zh": ("Chinese", "中文"), "de": ("German", "Deutsch"),
    "es": ("Spanish", "español"), "ru": ("Russian", "русский"), "ko": ("Korean", "한국어"),
    "fr": ("French", "français"), "ja": ("Japanese", "日本語"), "pt": ("Portuguese", "português"),
    "tr": ("Turkish", "Türkçe"), "pl": ("Polish", "polski"), "ca": ("Catalan", "català"),
    "nl": ("Dutch", "Nederlands"), "ar": ("Arabic", "العربية"), "sv": ("Swedish", "svenska"),
    "it": ("Italian", "italiano"), "id": ("Indonesian", "Bahasa Indonesia"), "hi": ("Hindi", "हिन्दी"),
    "fi": ("Finnish", "suomi"), "vi": ("Vietnamese", "Tiếng Việt"), "he": ("Hebrew", "עברית"),
    "uk": ("Ukrainian", "українська"), "el": ("Greek", "Ελληνικά"), "ms": ("Malay", "Bahasa Melayu"),
    "cs": ("Czech", "čeština"), "ro": ("Romanian", "română"), "da": ("Danish", "dansk"),
    "hu": ("Hungarian", "magyar"), "ta": ("Tamil", "தமிழ்"), "no": ("Norwegian", "norsk"),
    "th": ("Thai", "ไทย"), "ur": ("Urdu", "اردو"), "hr": ("Croatian", "hrvatski"),
    "bg": ("Bulgarian", "български"), "lt": ("Lithuanian", "lietuvių"), "la": ("Latin", "Latina"),
    "mi": ("Maori", "Māori"), "ml": ("Malayalam", "മലയാളം"), "cy": ("Welsh", "Cymraeg"),
    "sk": ("Slovak", "slovenčina"), "te": ("Telugu", "తెలుగు"), "fa": ("Persian", "فارسی"),
    "lv": ("Latvian", "latviešu"), "bn": ("Bengali", "বাংলা"), "sr": ("Serbian", "српски"),
    "az": ("Azerbaijani", "azərbaycan"), "sl": ("Slovenian", "slovenščina"), "kn": ("Kannada", "ಕನ್ನಡ"),
    "et": ("Estonian", "eesti"), "mk": ("Macedonian", "македонски"), "br": ("Breton", "brezhoneg"),
    "eu": ("Basque", "euskara"), "is": ("Icelandic", "íslenska"), "hy": ("Armenian", "հայերեն"),
    "ne": ("Nepali", "नेपाली"), "mn": ("Mongolian", "монгол"), "bs": ("Bosnian", "bosanski"),
    "kk": ("Kazakh", "қазақ"), "sq": ("Albanian", "shqip"), "sw": ("Swahili", "Kiswahili"),
    "gl": ("Galician", "galego"), "mr": ("Marathi", "मराठी"), "pa": ("Punjabi", "ਪੰਜਾਬੀ"),
    "si": ("Sinhala", "සිංහල"), "km": ("Khmer", "ខ្មែរ"), "sn": ("Shona", "chiShona"),
    "yo": ("Yoruba", "Yorùbá"), "so": ("Somali", "Soomaali"), "af": ("Afrikaans", "Afrikaans"),
    "oc": ("Occitan", "occitan"), "ka": ("Georgian", "ქართული"), "be": ("Belarusian", "беларуская"),
    "tg": ("Tajik", "тоҷикӣ"), "sd": ("Sindhi", "سنڌي"), "gu": ("Gujarati", "ગુજરાતી"),
    "am": ("Amharic", "አማርኛ"), "yi": ("Yiddish", "ייִדיש"), "lo": ("Lao", "ລາວ"),
    "uz": ("Uzbek", "oʻzbek"), "fo": ("Faroese", "føroyskt"), "ht": ("Haitian Creole", "kreyòl ayisyen"),
    "ps": ("Pashto", "پښتو"), "tk": ("Turkmen", "türkmen"), "nn": ("Nynorsk", "nynorsk"),
    "mt": ("Maltese", "Malti"), "sa": ("Sanskrit", "संस्कृतम्"), "lb": ("Luxembourgish", "Lëtzebuergesch"),
    "my": ("Burmese", "မြန်မာ"), "bo": ("Tibetan", "བོད་སྐད"), "tl": ("Tagalog", "Tagalog"),
    "mg": ("Malagasy", "Malagasy"), "as": ("Assamese", "অসমীয়া"), "tt": ("Tatar", "татар"),
    "haw": ("Hawaiian", "ʻŌlelo Hawaiʻi"), "ln": ("Lingala", "lingála"), "ha": ("Hausa", "Hausa"),
    "ba": ("Bashkir", "башҡорт"), "jw": ("Javanese", "basa Jawa"), "su": ("Sundanese", "basa Sunda"),
    "yue": ("Cantonese", "粵語"),
}

# A language the user set (or the deployment's default) gives way only to another one that leads it by this
# share: a clear French clip or sentence from a user set to English is answered in French, a mumbled one is not.
SWITCH_LEAD = 0.5
# In `auto`, the user's last language wins unless another one leads it by more than this share.
TIE_MARGIN = 0.2
# Detection hears a few seconds of sound, not words: a 3-s Spanish clip scored Italian 0.49, Spanish 0.44, and
# another Hindi 0.66, English 0.05, Spanish 0.03. Below this share for the best expected language, the clip is also
# decoded in each close rival, and the transcript the recognizer is surest of wins: Spanish speech decoded as
# Spanish gets far likelier words than decoded as Italian or English.
SURE_SHARE = 0.8
RIVAL_SHARE = 0.05  # a language holding less of the expected ones' share is not worth a decode
MAX_RIVALS = 2
PRIOR_WEIGHT = 0.1  # how much detection still counts beside the decode's mean token log-probability
LOOPING = 2.4  # text that compresses this well repeats itself: a decoder stuck in a loop, however sure it is
# Of the transcripts of an unsure clip, the chat's last language keeps the clip unless another transcript is surer
# by this much (log mean word probability): a short clip's decodes in two close languages can score within a few
# hundredths of each other, and a difference that small must not decide what a Spanish speaker said.
LAST_LEAD = 0.1

# Said once per chat and language when the model cannot write the user's language; keyed by the answer's language.
FALLBACK_NOTICE = {
    "en": "I can't write {user_en} well yet, so I'll answer in English.",
    "zh": "我还不会写{user_en}，所以我用中文回答。",
    "fr": "Je ne sais pas encore bien écrire en {user_native}, je vais donc répondre en français.",
    "es": "Todavía no sé escribir bien en {user_native}, así que responderé en español.",
}


# Said once per chat and language where no voice here speaks the answer's language understandably; in that language
# where we have the sentence, else in English. The answer itself still comes, as text.
CANNOT_SPEAK = {
    "en": "I can't speak {name} yet, so I'm answering in text.",
    "pt": "Ainda não sei falar português, por isso respondo por escrito.",
    "ja": "まだ日本語を話せないので、文字で答えます。",
    "ru": "Я пока не умею говорить по-русски, поэтому отвечаю текстом.",
    "it": "Non so ancora parlare italiano, quindi rispondo per iscritto.",
    "de": "Ich kann noch kein Deutsch sprechen, deshalb antworte ich schriftlich.",
    "fr": "Je ne sais pas encore parler français, je réponds donc par écrit.",
    "es": "Todavía no sé hablar español, así que respondo por escrito.",
    "zh": "我还不会说中文，所以用文字回答。",
    "ko": "아직 한국어로 말할 수 없어서 글로 답합니다.",
}


def cannot_speak(language: str) -> str:
    """The notice that the answer comes in text because no voice here speaks `language`."""
    return CANNOT_SPEAK.get(language, CANNOT_SPEAK["en"]).format(name=english_name(language))


class UnknownLanguage(BadInput):
    code = "unknown_language"

    def __init__(self, language: str, where: str = "") -> None:
        examples = "en, zh, fr, es, de, it, pt, ru"
        super().__init__(f"{where}{': ' if where else ''}'{language}' is not a language code doppel knows; "
                         f"use a code such as {examples}, or auto.")


def base_code(language: str) -> str:
    """'zh-CN' → 'zh', 'PT_br' → 'pt'."""
    return language.replace("_", "-").split("-")[0].strip().lower()


def is_known(language: str) -> bool:
    return language in NAMES


def chosen_language(code: str, expected: Collection[str]) -> str:
    """A user's choice of the language they speak (a /language command): a known code among the deployment's
    `expected` ones (any known code where that list is empty), or auto."""
    code = code.strip().lower()
    if code == "auto":
        return code
    if not is_known(code):
        raise UnknownLanguage(code)
    if expected and code not in expected:
        raise BadInput(f"Here I speak {', '.join(expected)}; choose one of them, or auto.")
    return code


def english_name(language: str) -> str:
    return NAMES.get(language, (language, language))[0]


def native_name(language: str) -> str:
    return NAMES.get(language, (language, language))[1]


def choose_language(scores: Mapping[str, float], *, allowed: Collection[str] = (), fixed: str | None = None,
                    last: str | None = None, default: str = "en") -> str:
    """The language of a message, from a detector's scores (probabilities over languages).

    Only `allowed` languages count (empty: any), renormalized among themselves, so a short clip is not
    taken for a language nobody here speaks. A `fixed` language (the user's /language or the deployment's
    default) stands unless another allowed language leads it by SWITCH_LEAD; otherwise the best wins, and the
    user's `last` language breaks near-ties.
    """
    share = shares(scores, allowed)
    if not share:
        return fixed or last or default
    best = max(share, key=share.__getitem__)
    if fixed:
        return best if share[best] - share.get(fixed, 0.0) >= SWITCH_LEAD else fixed
    if last and last != best and share[best] - share.get(last, 0.0) < TIE_MARGIN:
        return last
    return best


def shares(scores: Mapping[str, float], allowed: Collection[str] = ()) -> dict[str, float]:
    """The detector's probabilities of the `allowed` languages (any, when empty), renormalized among themselves."""
    kept = {code: p for code, p in scores.items() if p > 0 and (not allowed or code in allowed)}
    total = sum(kept.values())
    return {code: p / total for code, p in kept.items()} if total > 0 else {}


def rivals(scores: Mapping[str, float], chosen: str, allowed: Collection[str] = ()) -> list[str]:
    """The other languages worth decoding a clip in, when detection is unsure of `chosen`; none when it is sure."""
    share = shares(scores, allowed)
    if share.get(chosen, 0.0) >= SURE_SHARE:
        return []
    close = sorted((code for code, p in share.items() if code != chosen and p >= RIVAL_SHARE), key=share.__getitem__,
                   reverse=True)
    return close[:MAX_RIVALS]


def looping(text: str) -> bool:
    data = text.encode("utf-8")
    return len(data) > 40 and len(data) / len(zlib.compress(data)) > LOOPING


def surest(transcripts: Mapping[str, Transcript], scores: Mapping[str, float], allowed: Collection[str] = (),
           last: str | None = None) -> str:
    """Of one clip decoded in several languages, the language whose transcript the recognizer was surest of
    (mean token probability, with detection's share as a light prior); a looping or empty one never wins. The
    chat's `last` language, where it was decoded, wins unless another is surer by LAST_LEAD."""
    share = shares(scores, allowed)

    def score(code: str) -> float:
        text = transcripts[code].text.strip()
        if not text or looping(text):
            return -math.inf
        return math.log(max(transcripts[code].confidence, 1e-9)) + PRIOR_WEIGHT * math.log(max(share.get(code, 0.0), 1e-6))

    best = max(transcripts, key=score)
    if last is not None and last in transcripts and last != best and score(last) > -math.inf and score(best) - score(last) < LAST_LEAD:
        return last
    return best


@dataclass(frozen=True)
class AnswerLanguage:
    user: str  # what the user wrote or spoke
    answer: str  # what the answer is written and spoken in
    fallback: bool = False  # the model cannot write what the persona or user wanted

    @property
    def notice(self) -> str:
        """The sentence that says so, in the answer's language; empty when there is none to say."""
        if not self.fallback:
            return ""
        template = FALLBACK_NOTICE.get(self.answer, "")
        return template.format(user_en=english_name(self.user), user_native=native_name(self.user))


def plan_answer(user: str, persona: Persona, model_languages: Collection[str] | None) -> AnswerLanguage:
    """The persona's language, or the user's for an `auto` persona; when the model cannot write it, the first
    language it can (its list is in order of preference)."""
    wanted = user if persona.language == "auto" else persona.language
    if not model_languages or wanted in model_languages:
        return AnswerLanguage(user, wanted)
    return AnswerLanguage(user, next(iter(model_languages)), fallback=True)


def persona_prompt(persona: Persona, language: str) -> str:
    """The persona's text for `language` (its English one, else its first, where it has none), then the
    instruction to answer in that language, which every model reads the same way."""
    prompts = dict(persona.prompts) or {persona.language: persona.system_prompt}
    text = prompts.get(language) or prompts.get("en") or next(iter(prompts.values()))
    name, native = english_name(language), native_name(language)
    said = name if name == native else f"{name} ({native})"
    return f"{text} Always answer in {said}."
