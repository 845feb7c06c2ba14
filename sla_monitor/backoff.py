"""The one exponential backoff every retry uses: the poll, the start-up migration, the outbox."""

from __future__ import annotations

# Beyond this many doublings any positive start has passed any maximum a float can hold:
# the exponent stops here, so a huge attempt count never overflows.
_MAX_DOUBLINGS = 1000


def backoff(attempts: int, initial: float, maximum: float, jitter: float | None = None) -> float:
    """``initial * 2**attempts`` seconds, capped at ``maximum``.

    With ``jitter`` (a number in [0, 1), e.g. random.random(), supplied by the caller so that
    tests choose it) the delay is spread over the upper half of that: from half the capped
    delay (jitter 0) up to, not including, all of it. Negative attempts count as none.
    """
    if jitter is not None and not 0 <= jitter < 1:
        raise ValueError(f"jitter must be in [0, 1), not {jitter!r}")
    exponent = min(max(attempts, 0), _MAX_DOUBLINGS)
    ceiling = min(maximum, initial * 2.0**exponent)
    if jitter is None:
        return float(ceiling)
    return float(ceiling / 2 + jitter * ceiling / 2)
