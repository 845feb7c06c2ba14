"""Customer update templates are checked whole when loaded, and never leave the sandbox."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from jinja2 import TemplateError

from sla_monitor.templates import SAMPLE, TemplateProblem, UpdateTemplates

SECRET = "planted-secret-3f9a1c"

# Templates that reach for Python internals: the module globals behind a Jinja2 global, the
# class hierarchy of a string, and the |attr("format") route out of the sandbox of Jinja2 3.1.5
# (CVE-2025-27516), whose format string reads os.environ through __globals__.
HOSTILE = [
    "{{ ''.__class__.__mro__ }}",
    "{{ cycler.__init__.__globals__.os.environ }}",
    "{{ ''['__class__'] }}",
    "{{ ''.format.__self__ }}",
    '{{ ("{0.__init__.__globals__[os].environ}"|attr("format"))(cycler) }}',
    "{{ ( 'x' | attr('__class__') ) }}",
    "{% set f = 'a'|attr('format') %}{{ f('{0.__class__}', cycler) }}",
]


def templates(directory: Path, text: str, language: str = "en") -> UpdateTemplates:
    (directory / f"update.{language}.txt").write_text(text, encoding="utf-8")
    return UpdateTemplates(directory, language)


@pytest.fixture
def planted_secret(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("SLA_TEST_SECRET", SECRET)
    yield SECRET


def test_every_planner_value_may_be_used(tmp_path: Path) -> None:
    text = " ".join(f"{{{{ {name} }}}}" for name in SAMPLE)
    loaded = templates(tmp_path, text)
    assert loaded.render("en", SAMPLE) == " ".join(SAMPLE.values())


def test_an_unknown_name_in_a_branch_the_sample_skips_fails_the_check(tmp_path: Path) -> None:
    text = 'Hello {% if priority == "urgent" %}call {{ hotline }}{% endif %}'
    with pytest.raises(TemplateProblem) as problem:
        templates(tmp_path, text)
    assert str(tmp_path / "update.en.txt") in str(problem.value)
    assert "'hotline'" in str(problem.value)


def test_unknown_names_in_loops_and_filters_are_found(tmp_path: Path) -> None:
    text = "{% for line in lines %}{{ line }}{% endfor %}{{ subject|default(fallback) }}"
    with pytest.raises(TemplateProblem, match="'fallback', 'lines'"):
        templates(tmp_path, text)


def test_names_the_template_defines_itself_and_jinja_globals_are_fine(tmp_path: Path) -> None:
    text = "{% set greeting = 'Hi' %}{{ greeting }} {% for n in range(2) %}{{ n }}{% endfor %}"
    assert templates(tmp_path, text).render("en", SAMPLE) == "Hi 01"


def test_the_sample_render_still_catches_an_unknown_filter(tmp_path: Path) -> None:
    with pytest.raises(TemplateProblem, match=r"update\.en\.txt.*shout"):
        templates(tmp_path, "{{ subject|shout }}")


def test_a_syntax_error_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(TemplateProblem, match=r"update\.de\.txt.*TemplateSyntaxError"):
        (tmp_path / "update.en.txt").write_text("fine")
        templates(tmp_path, "{% if %}", language="de")


@pytest.mark.parametrize("text", HOSTILE)
def test_templates_reaching_for_internals_fail_the_check(
    tmp_path: Path, planted_secret: str, text: str
) -> None:
    with pytest.raises(TemplateProblem) as problem:
        templates(tmp_path, text)
    assert planted_secret not in str(problem.value)


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_templates_in_an_untaken_branch_fail_the_check(tmp_path: Path, text: str) -> None:
    with pytest.raises(TemplateProblem):
        templates(tmp_path, f'{{% if priority == "urgent" %}}{text}{{% endif %}}')


@pytest.mark.parametrize("text", HOSTILE)
def test_the_sandbox_itself_never_exposes_the_environment(
    tmp_path: Path, planted_secret: str, text: str
) -> None:
    """Behind the load check, the renderer's own sandbox holds: rendering a hostile source
    directly either fails or yields no environment variable."""
    environment = templates(tmp_path, "{{ subject }}")._env
    try:
        output = environment.from_string(text).render(**SAMPLE)
    except TemplateError as error:
        output = str(error)
    assert planted_secret not in output


def test_the_jinja2_requirement_excludes_the_sandbox_escape() -> None:
    """Jinja2 3.1.5 lets |attr reach str.format and os.environ (CVE-2025-27516)."""
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    (requirement,) = [
        d for d in pyproject["project"]["dependencies"] if d.lower().startswith("jinja2")
    ]
    version = re.fullmatch(r"jinja2>=(\d+)\.(\d+)\.(\d+)", requirement.replace(" ", ""))
    assert version is not None, requirement
    assert tuple(int(part) for part in version.groups()) >= (3, 1, 6)
