"""Rate-limit settings as values: ``100/min`` with a burst, per endpoint class.

Shared by the engine's limiter and the simulator's buckets so the two can never disagree on
what "100 writes per minute, burst 20" means: a token bucket of capacity ``burst`` refilled at
``count / period`` tokens per second. In any interval of length T at most
``burst + count * T / period`` requests start.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

_PERIODS = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
}
_SPEC = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)?\s*([a-z]+)\s*$")


class EndpointClass(StrEnum):
    """The contract's two limit classes: GET is a read, every other method a write."""

    READ = "read"
    WRITE = "write"

    @classmethod
    def of_method(cls, method: str) -> EndpointClass:
        return cls.READ if method.upper() in {"GET", "HEAD", "OPTIONS"} else cls.WRITE


@dataclass(frozen=True, slots=True)
class Rate:
    """``count`` requests per ``period`` seconds (sustained)."""

    count: float
    period: float = 60.0

    def __post_init__(self) -> None:
        if self.count <= 0 or self.period <= 0:
            raise ValueError("a rate needs a positive count and a positive period")

    @property
    def per_second(self) -> float:
        return self.count / self.period

    @property
    def per_minute(self) -> float:
        return self.per_second * 60.0

    @classmethod
    def parse(cls, text: str) -> Rate:
        """Parse ``100/min``, ``300/m``, ``5/s``, ``100/10s`` or ``2.5/sec``.

        Raises ``ValueError`` with a message fit to show the user.
        """
        match = _SPEC.match(text.lower())
        if not match or match.group(3) not in _PERIODS:
            raise ValueError(
                f"{text!r} is not a rate; write it as COUNT/UNIT, e.g. 100/min, 5/s or 100/10s"
            )
        count = float(match.group(1))
        multiple = float(match.group(2)) if match.group(2) else 1.0
        return cls(count=count, period=multiple * _PERIODS[match.group(3)])

    def __str__(self) -> str:
        count = int(self.count) if self.count == int(self.count) else self.count
        for name, seconds in (("s", 1.0), ("min", 60.0), ("h", 3600.0)):
            if self.period == seconds:
                return f"{count}/{name}"
        return f"{count}/{self.period:g}s"


@dataclass(frozen=True, slots=True)
class ClassLimits:
    """Sustained rate plus burst capacity for one endpoint class."""

    rate: Rate
    burst: int

    def __post_init__(self) -> None:
        if self.burst < 1:
            raise ValueError("burst must be at least 1")

    def max_starts(self, interval: float) -> float:
        """The most requests allowed to start in any window of ``interval`` seconds."""
        return self.burst + self.rate.per_second * interval


@dataclass(frozen=True, slots=True)
class LimitSettings:
    """Limits for both classes of one token."""

    read: ClassLimits
    write: ClassLimits

    def for_class(self, endpoint_class: EndpointClass) -> ClassLimits:
        return self.read if endpoint_class is EndpointClass.READ else self.write


#: The contract's defaults: 300 reads and 100 writes per minute, bursts 50 and 20.
DEFAULT_LIMITS = LimitSettings(
    read=ClassLimits(Rate(300, 60.0), burst=50),
    write=ClassLimits(Rate(100, 60.0), burst=20),
)
