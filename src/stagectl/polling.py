"""Waiting for something to become true (a container to boot, a server to answer), with tenacity:
one way to poll, so every wait has a deadline, a fixed pace and its own timeout error."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

T = TypeVar("T")


def wait_for(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    interval: float,
    on_timeout: Callable[[], Exception],
) -> T:
    """Call PROBE every INTERVAL seconds until it returns something other than None, and return
    that. A probe that raises ends the wait with its error (a state that will not get better);
    after TIMEOUT seconds, the error `on_timeout()` makes (it may read what the probes saw)."""
    retrying = Retrying(
        stop=stop_after_delay(timeout),
        wait=wait_fixed(interval),
        retry=retry_if_result(lambda result: result is None),
    )
    try:
        result = retrying(probe)
    except RetryError:
        result = None
    if result is None:
        raise on_timeout()
    return result
