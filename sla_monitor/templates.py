"""Customer update templates: one file per language, ``update.<language>.txt``, rendered in
Jinja2's sandbox (no access to Python internals) with undefined names as errors.

A template is checked when it is loaded, not when the first ticket needs it: every name it
uses must be one the planner provides (the keys of ``SAMPLE``), it may not reach for attributes
beginning with ``_`` or use the ``attr`` filter (the way out of the sandbox of Jinja2 before
3.1.6, CVE-2025-27516), and it must render the sample (which catches unknown filters)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import StrictUndefined, TemplateError, meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

# The values the planner renders a template with (sla_monitor/update_planner.py), by example:
# its keys are the only names a template may use besides Jinja2's own globals (range, ...).
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
            self._check(language)  # fail at config check, not at 3 a.m.

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

    def _check(self, language: str) -> None:
        """Every name, attribute and filter the template could use, in any branch, then the
        sample render: one sample takes one path through ``{% if %}`` and misses the rest."""
        path = self.directory / f"update.{language}.txt"
        try:
            tree = self._env.parse(self._sources[language])
            used = meta.find_undeclared_variables(tree)  # compiles: unknown filters fail here
        except TemplateError as error:
            raise TemplateProblem(f"{path}: {type(error).__name__}: {error}") from None
        if unknown := sorted(used - SAMPLE.keys() - self._env.globals.keys()):
            names = ", ".join(repr(name) for name in unknown)
            raise TemplateProblem(
                f"{path}: UndefinedError: unknown variable {names} (known: {', '.join(SAMPLE)})"
            )
        for node in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Filter)):
            if isinstance(node, nodes.Filter) and node.name == "attr":
                raise TemplateProblem(
                    f"{path}: SecurityError: line {node.lineno}: the attr filter is not allowed"
                )
            key = node.attr if isinstance(node, nodes.Getattr) else getattr(node, "arg", None)
            if isinstance(key, nodes.Const):
                key = key.value
            if isinstance(key, str) and key.startswith("_"):
                raise TemplateProblem(
                    f"{path}: SecurityError: line {node.lineno}: attribute {key!r} reaches "
                    "for Python internals, which templates may not use"
                )
        self.render(language, SAMPLE)

    def render(self, language: str, values: dict[str, Any]) -> str:
        path = self.directory / f"update.{language}.txt"
        try:
            return self._env.from_string(self._sources[language]).render(**values)
        except TemplateError as error:
            raise TemplateProblem(f"{path}: {type(error).__name__}: {error}") from None


def format_when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
