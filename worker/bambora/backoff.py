"""Backoff: how long to wait before trying again after transient trouble.

One policy for the API calls (`canceller`) and the token requests (`auth`), so the
two cannot drift apart. When the server said when to come back (`Retry-After`, in
seconds or as an HTTP date, already capped at 60 s by `api.parse_retry_after`), we
wait exactly that: sooner would most likely be refused again, later wastes the run's
time. Otherwise full-jitter exponential backoff, uniform(0, min(30, 0.5 * 2**(n-1)))
before try n + 1, so that workers that failed together do not retry together.

Trouble is signalled by raising `RetryLater`. Whoever retries decides whether to try
again (the canceller's own loop; tenacity's `retry=` and `stop=` for the token
requests); this module says only how long to wait, as a tenacity wait policy.
"""

from __future__ import annotations

from tenacity import RetryCallState, wait_exception, wait_random_exponential
from tenacity.wait import wait_base

#: The first retry waits up to this many seconds; each later one doubles the bound.
MULTIPLIER = 0.5
#: No jittered wait is longer than this: a run should not idle for minutes on one try.
MAX_BACKOFF = 30.0

# wait_exception's predicate must return a float; no real wait is negative, so -1
# stands for "the exception carries no Retry-After".
_NOT_ASKED = -1.0


class RetryLater(Exception):
    """Transient trouble worth another try; `after` is the server's `Retry-After`, if any."""

    def __init__(self, after: float | None = None, reason: str = "transient trouble") -> None:
        super().__init__(reason)
        self.after = after


def _asked(exc: BaseException) -> float:
    if isinstance(exc, RetryLater) and exc.after is not None:
        return max(exc.after, 0.0)
    return _NOT_ASKED


# Lower-case, like the tenacity strategies it is composed with.
class wait_retry_after(wait_base):
    """Wait a `RetryLater`'s `after` exactly when it carries one, else `fallback`."""

    def __init__(self, fallback: wait_base) -> None:
        self._asked = wait_exception(_asked)
        self._fallback = fallback

    def __call__(self, retry_state: RetryCallState) -> float:
        asked = self._asked(retry_state)
        return asked if asked != _NOT_ASKED else self._fallback(retry_state)


#: Full jitter, capped: the wait when the server did not say when.
JITTER = wait_random_exponential(multiplier=MULTIPLIER, max=MAX_BACKOFF)
#: The policy: `Retry-After` when given, else `JITTER`. Pass it as tenacity's `wait=`.
BACKOFF = wait_retry_after(JITTER)
