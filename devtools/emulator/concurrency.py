"""The account's Lambda concurrency: one pool per emulator, as one AWS account + region has.

Every running function takes a slot for as long as it runs: the ``launch`` function of
each render and its renderer functions for their lifetimes, and every synchronous
invocation (``start``, ``status``, ``still``, ``info``) for the duration of the call. That is
AWS's model ("concurrent executions", ``docs/lambda/limits.mdx``, ``concurrency.mdx``):
a status poll competes with renderers for the same limit unless ``skipLambdaInvocation``
(JS only) reads S3 directly. What happens without a slot depends on who asks: a
synchronous Invoke gets HTTP 429 ``TooManyRequestsException``; the launch's renderer
invocation gets the same error and Remotion turns it into a fatal render error
(``lambda-client/src/call-lambda-streaming.ts``); an ``Event`` invocation (the launch that
``start`` makes) is queued by AWS and runs once a slot frees.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from devtools.emulator.constants import JSONDict

KINDS = ("launch", "renderer", "start", "status", "still", "info", "compositions")


@dataclass(slots=True)
class Account:
    """Slots in use by kind, the peak, and what was refused (lock held for every call)."""

    limit: int | None
    current: int = 0
    peak: int = 0
    in_use: Counter[str] = field(default_factory=Counter)
    peak_by_kind: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)

    def free(self) -> bool:
        return self.limit is None or self.current < self.limit

    def acquire(self, kind: str) -> bool:
        if not self.free():
            self.refused[kind] += 1
            return False
        self.current += 1
        self.in_use[kind] += 1
        self.peak = max(self.peak, self.current)
        self.peak_by_kind[kind] = max(self.peak_by_kind[kind], self.in_use[kind])
        return True

    def release(self, kind: str) -> None:
        self.current -= 1
        self.in_use[kind] -= 1

    def reset_peak(self) -> None:
        self.peak = self.current
        self.peak_by_kind = Counter(self.in_use)

    def as_json(self) -> JSONDict:
        return {
            "limit": self.limit,
            "current": self.current,
            "peak": self.peak,
            "in_use": {k: self.in_use[k] for k in KINDS if self.in_use[k]},
            "peak_by_kind": {k: self.peak_by_kind[k] for k in KINDS if self.peak_by_kind[k]},
            "refused": {k: self.refused[k] for k in KINDS if self.refused[k]},
        }
