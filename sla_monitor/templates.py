"""Customer update templates: one file per language, ``update.<language>.txt``, rendered in
Jinja2's sandbox (no access to Python internals) with undefined names as errors."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

SAMPLE = {
    "ticket_id": "4711",
    "subject": "Website down",
    "status": "open",
    "priority": "high",
    "queue": "support",
    "age": "5h 10m",
    "next_update": "2026-01-15 18:00 UTC",
}


class TemplateProblem(ValueError):
    """A template that cannot be loaded or rendered; names the file."""


class UpdateTemplates:
    def __init__(self, directory: Path, default_language: str) -> None:
        self.directory = directory
        self.default_language = default_language
        self._env = ImmutableSandboxedEnvironment(
            undefined=StrictUndefined, keep_trailing_newline=True
        )
        self._sources: dict[str, str] = {}
        if not directory.is_dir():
            raise TemplateProblem(f"{directory}: the templates directory does not exist")
        for path in sorted(directory.glob("update.*.txt")):
            language = path.name.removeprefix("update.").removesuffix(".txt")
            self._sources[language] = path.read_text(encoding="utf-8")
        if default_language not in self._sources:
            raise TemplateProblem(
                f"{directory}: no template update.{default_language}.txt for the fallback "
                f"language {default_language!r}"
            )
        for language in self._sources:
            self.render(language, SAMPLE)  # fail at config check, not at 3 a.m.

    @property
    def languages(self) -> list[str]:
        return sorted(self._sources)

    def pick(self, language: str | None) -> str:
        """The customer's language, its base ('de' for 'de-AT'), else the fallback."""
        if language:
            for candidate in (language, language.split("-")[0].split("_")[0]):
                if candidate.lower() in self._sources:
                    return candidate.lower()
        return self.default_language

    def render(self, language: str, values: dict[str, Any]) -> str:
        path = self.directory / f"update.{language}.txt"
        try:
            return self._env.from_string(self._sources[language]).render(**values)
        except TemplateError as error:
            raise TemplateProblem(f"{path}: {type(error).__name__}: {error}") from None


def format_when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
