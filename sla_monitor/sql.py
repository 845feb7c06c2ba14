"""Named SQL queries kept in ``.sql`` files of the package, loaded once at import.

The file format:

    -- Anything before the first query is the file's header: comments and blank lines only.

    -- name: load_watermark
    -- Lines after the name line are the query (comments included, sent as they are), up to
    -- the next name line or the end of the file.
    SELECT changed_at FROM {schema}.watermarks WHERE source = $1

A name line is ``-- name: <identifier>`` alone on its line. Each name appears once and each
query has a body; anything else is a ValueError naming the file and line, so a broken file
fails the import, never a query in the middle of a run. Looking up a name the file does not
define is a KeyError naming the file. Placeholders such as ``{schema}`` are left to the caller.
Files are read with importlib.resources, so they load from an installed package too.
"""

from __future__ import annotations

import re
from importlib import resources

_NAME_LINE = re.compile(r"^--\s*name:(.*)$")
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")


class Queries(dict[str, str]):
    """The queries of one file by name; an unknown name is a KeyError naming the file."""

    def __init__(self, source: str, queries: dict[str, str]) -> None:
        super().__init__(queries)
        self.source = source

    def __missing__(self, name: str) -> str:
        raise KeyError(f"{self.source} has no query named {name!r}")


def parse_queries(text: str, source: str = "<sql>") -> Queries:
    """The named queries of ``text`` (the format above); ``source`` names it in errors."""
    queries: dict[str, str] = {}
    name: str | None = None
    started = 0
    body: list[str] = []

    def close() -> None:
        if name is None:
            return
        sql = "\n".join(body).strip()
        if not any(line.strip() and not line.lstrip().startswith("--") for line in body):
            raise ValueError(f"{source}:{started}: query {name!r} is empty")
        queries[name] = sql

    for number, line in enumerate(text.splitlines(), start=1):
        match = _NAME_LINE.match(line.strip())
        if match is None:
            if name is None and line.strip() and not line.lstrip().startswith("--"):
                raise ValueError(f"{source}:{number}: SQL before the first '-- name:' line")
            if name is not None:
                body.append(line)
            continue
        close()
        candidate = match.group(1).strip()
        if not _IDENTIFIER.match(candidate):
            raise ValueError(
                f"{source}:{number}: a query needs a name of lowercase letters, digits and "
                f"underscores, not {candidate!r}"
            )
        if candidate in queries:
            raise ValueError(f"{source}:{number}: query {candidate!r} is defined twice")
        name, started, body = candidate, number, []
    close()
    return Queries(source, queries)


def load_queries(package: str, filename: str) -> Queries:
    """The named queries of the file ``filename`` in ``package`` (see the module docstring)."""
    text = (resources.files(package) / filename).read_text(encoding="utf-8")
    return parse_queries(text, f"{package}/{filename}")
