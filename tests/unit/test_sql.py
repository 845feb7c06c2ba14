"""The named-query loader: the file format and its errors."""

from __future__ import annotations

import pytest

from sla_monitor.sql import load_queries, parse_queries


def test_each_name_line_starts_a_query_up_to_the_next() -> None:
    queries = parse_queries(
        "-- header comment\n\n"
        "-- name: first\n"
        "-- what it does\n"
        "SELECT 1\n"
        "FROM {schema}.t\n\n"
        "--name:second\n"
        "SELECT 2;\n"
    )
    assert dict(queries) == {
        "first": "-- what it does\nSELECT 1\nFROM {schema}.t",
        "second": "SELECT 2;",
    }


def test_a_duplicate_name_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"x.sql:4: query 'twice' is defined twice"):
        parse_queries("-- name: twice\nSELECT 1\n\n-- name: twice\nSELECT 2\n", "x.sql")


def test_a_name_line_without_a_name_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"x.sql:1: a query needs a name"):
        parse_queries("-- name:\nSELECT 1\n", "x.sql")
    with pytest.raises(ValueError, match="a query needs a name"):
        parse_queries("-- name: Not-A-Name\nSELECT 1\n", "x.sql")


def test_sql_without_a_name_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"x.sql:2: SQL before the first '-- name:' line"):
        parse_queries("-- header\nSELECT 1\n-- name: later\nSELECT 2\n", "x.sql")


def test_a_name_without_a_query_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"x.sql:1: query 'empty' is empty"):
        parse_queries("-- name: empty\n-- only a comment\n\n-- name: full\nSELECT 1\n", "x.sql")


def test_looking_up_a_missing_name_is_an_error_naming_the_file() -> None:
    queries = parse_queries("-- name: there\nSELECT 1\n", "x.sql")
    with pytest.raises(KeyError, match=r"x.sql has no query named 'absent'"):
        queries["absent"]


def test_the_shipped_files_load_from_the_package() -> None:
    """Every query file the package ships parses (importlib.resources, as installed)."""
    for package, filename in (("sla_monitor.store", "queries.sql"),):
        assert load_queries(package, filename)
