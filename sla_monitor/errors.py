"""The project's notion of "the database is away", translated from the driver at the edge.

The parts that talk to PostgreSQL (the state store, the SQL source, the outbox's store) raise
DatabaseUnavailable for anything the driver or the network raises (DATABASE_ERRORS); the rest
of the daemon catches that one exception and retries, and never imports the driver. A refusal
(a wrong password, an unknown role or database) is one such failure too: the daemon's poll
retries it like any other, while the commands and the start-up migration turn it into
DatabaseRefused (``DatabaseUnavailable.refusal``), which waiting will not fix.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, ParamSpec, TypeVar, overload

import asyncpg

# What the driver and the network raise when the database is away or a query fails.
DATABASE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    # A connection whose protocol state broke under it, e.g. "cannot switch to state 11"
    # when the server ends the session (pg_terminate_backend) while a query is under way.
    asyncpg.InternalClientError,
)

# The server answered and said no: a wrong password, an unknown role, no pg_hba.conf entry
# (InvalidPasswordError is one of these), or no such database. Configuration, which waiting
# will not fix, unlike a server that cannot be reached.
DATABASE_REFUSALS: tuple[type[Exception], ...] = (
    asyncpg.InvalidAuthorizationSpecificationError,
    asyncpg.InvalidCatalogNameError,
)

# The server cannot be reached or does not accept connections yet (starting up): worth
# waiting for at start, unlike a query the server rejects.
_UNREACHABLE: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
)


class DatabaseRefused(Exception):
    """The database refused the daemon (see DATABASE_REFUSALS); the message names the problem
    and the setting, never the DSN. The CLI exits 69 (EX_UNAVAILABLE) with it."""

    @classmethod
    def from_error(cls, error: BaseException, setting: str) -> DatabaseRefused:
        what = (
            "the database does not exist"
            if isinstance(error, asyncpg.InvalidCatalogNameError)
            else "the server refused the login"
        )
        # The server's message names the role or database, never the password.
        return cls(f"{setting}: {what} ({type(error).__name__}: {error}); fix the configuration")


class DatabaseUnavailable(Exception):
    """The database is away or failed a query: retried. ``error`` is the driver's exception;
    the message is its type and text (the driver's text names a host at most, never a DSN)."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(f"{type(error).__name__}: {error}")
        self.error = error

    @property
    def unreachable(self) -> bool:
        """The server could not be reached or is not accepting connections yet."""
        return isinstance(self.error, _UNREACHABLE)

    def refusal(self, setting: str) -> DatabaseRefused | None:
        """The DatabaseRefused this failure is, naming ``setting``; None unless the server
        refused the login or has no such database."""
        if isinstance(self.error, DATABASE_REFUSALS):
            return DatabaseRefused.from_error(self.error, setting)
        return None


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Raises DatabaseUnavailable (from the original) for any of DATABASE_ERRORS inside."""
    try:
        yield
    except DATABASE_ERRORS as error:
        raise DatabaseUnavailable(error) from error


P = ParamSpec("P")
T = TypeVar("T")


@overload
def translates(function: Callable[P, AsyncIterator[T]]) -> Callable[P, AsyncIterator[T]]: ...


@overload
def translates(
    function: Callable[P, Coroutine[Any, Any, T]],
) -> Callable[P, Coroutine[Any, Any, T]]: ...


def translates(function: Callable[P, Any]) -> Callable[P, Any]:
    """Decorates a coroutine function or an async generator function: what it raises of
    DATABASE_ERRORS (a generator: while it streams too) arrives as DatabaseUnavailable."""
    if inspect.isasyncgenfunction(function):

        @functools.wraps(function)
        async def stream(*args: P.args, **kwargs: P.kwargs) -> AsyncIterator[Any]:
            inner = function(*args, **kwargs)
            try:
                with translated():
                    async for item in inner:
                        yield item
            finally:
                # Closed with the wrapper, not left to the collector: its connection returns.
                with translated():
                    await inner.aclose()

        return stream

    @functools.wraps(function)
    async def call(*args: P.args, **kwargs: P.kwargs) -> Any:
        with translated():
            return await function(*args, **kwargs)

    return call
