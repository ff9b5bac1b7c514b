"""Personas are TOML files: the shipped ones beside this module, plus any in the configured folder."""
from __future__ import annotations

import tomllib
from pathlib import Path

from core.errors import DoppelError
from core.types import Persona

SHIPPED = Path(__file__).with_name("personas")


class UnknownPersona(DoppelError):
    code = "unknown_persona"

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"There is no persona called '{name}'. Choose one of: {', '.join(known)}.")


class PersonaFileError(ValueError):
    """A persona file that cannot be used: not TOML, no system_prompt, a number that is not one."""


def load_persona(path: Path) -> Persona:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        return Persona(
            name=str(data.get("name", path.stem)),
            system_prompt=" ".join(data["system_prompt"].split()),
            language=data.get("language", "en"),
            max_sentences=int(data.get("max_sentences", 3)),
            max_tokens=int(data.get("max_tokens", 160)),
            voice=data.get("voice") or None,
            avatar=data.get("avatar") or None,
        )
    except KeyError as exc:
        raise PersonaFileError(f"the persona file {path.name} has no {exc.args[0]}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, TypeError, ValueError, AttributeError) as exc:
        raise PersonaFileError(f"the persona file {path.name} cannot be read: {exc}") from None


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
