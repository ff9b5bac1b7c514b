"""Personas are TOML files: the shipped ones beside this module, plus any in the configured folder.

A persona's `system_prompt` is one text, or a table of texts by language (`[system_prompt]` with `en = ...`,
`zh = ...`); the answer's language picks the text (core.languages.persona_prompt).
"""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

from core.errors import DoppelError
from core.languages import is_known
from core.types import Persona

SHIPPED = Path(__file__).with_name("personas")


class UnknownPersona(DoppelError):
    code = "unknown_persona"

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"There is no persona called '{name}'. Choose one of: {', '.join(known)}.")


class BrokenPersona(DoppelError):
    """A persona file that cannot be used; raised at start-up, naming the file."""

    code = "broken_persona"

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"persona file {path}: {problem}")


_CJK = "\u3000-\u9fff\uff00-\uffef"


def _text(value: str) -> str:
    """One line; the line breaks between Chinese lines leave no space."""
    return re.sub(f"(?<=[{_CJK}]) (?=[{_CJK}])", "", " ".join(value.split()))


def load_persona(path: Path) -> Persona:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise BrokenPersona(path, str(exc).splitlines()[0]) from None
    language = str(data.get("language", "en")).lower()
    if language != "auto" and not is_known(language):
        raise BrokenPersona(path, f"language '{language}' is not a language code doppel knows (en, zh, fr ... or auto)")
    prompt = data.get("system_prompt")
    if isinstance(prompt, str):
        prompts = {("en" if language == "auto" else language): _text(prompt)}
    elif isinstance(prompt, dict) and prompt and all(isinstance(v, str) for v in prompt.values()):
        prompts = {str(code).lower(): _text(text) for code, text in prompt.items()}
        unknown = [code for code in prompts if not is_known(code)]
        if unknown:
            raise BrokenPersona(path, f"system_prompt has a text for '{unknown[0]}', which is not a language code")
    else:
        raise BrokenPersona(path, "system_prompt is missing: give one text, or a table of texts by language")
    own = prompts.get(language) or prompts.get("en") or next(iter(prompts.values()))
    try:
        return Persona(
            name=str(data.get("name", path.stem)),
            system_prompt=own,
            language=language,
            max_sentences=int(data.get("max_sentences", 3)),
            max_tokens=int(data.get("max_tokens", 160)),
            voice=data.get("voice") or None,
            avatar=data.get("avatar") or None,
            prompts=prompts,
        )
    except (TypeError, ValueError) as exc:
        raise BrokenPersona(path, f"max_sentences and max_tokens must be numbers ({exc})") from None


class PersonaBook:
    def __init__(self, extra_dir: Path | None = None) -> None:
        self._personas: dict[str, Persona] = {}
        for folder in (SHIPPED, extra_dir):
            if folder and folder.is_dir():
                for path in sorted(folder.glob("*.toml")):
                    persona = load_persona(path)
                    self._personas[persona.name] = persona

    def get(self, name: str) -> Persona:
        try:
            return self._personas[name]
        except KeyError:
            raise UnknownPersona(name, self.names()) from None

    def names(self) -> list[str]:
        return sorted(self._personas)
