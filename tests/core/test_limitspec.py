"""Rate values: parsing ``COUNT/UNIT`` and what a burst + rate allows in a window."""

from __future__ import annotations

import pytest

from flexpay_batch.core.limitspec import ClassLimits, EndpointClass, Rate


@pytest.mark.parametrize(
    ("text", "per_second"),
    [
        ("100/min", 100 / 60),
        ("300/m", 5.0),
        ("5/s", 5.0),
        ("2.5/sec", 2.5),
        ("100/10s", 10.0),
        ("3600/hour", 1.0),
        (" 100 / MIN ", 100 / 60),
    ],
)
def test_rates_parse(text: str, per_second: float) -> None:
    """Every accepted spelling gives the rate per second it means."""
    assert Rate.parse(text).per_second == pytest.approx(per_second)


@pytest.mark.parametrize("text", ["", "100", "fast", "100/fortnight", "-5/s", "0/s", "1e3/s"])
def test_bad_rates_are_refused_with_the_expected_form(text: str) -> None:
    """Anything else is a ValueError that shows the expected form."""
    with pytest.raises(ValueError, match=r"COUNT/UNIT|positive"):
        Rate.parse(text)


@pytest.mark.parametrize("text", ["100/min", "5/s", "100/10s", "2.5/s", "1/h"])
def test_rates_print_as_they_parse(text: str) -> None:
    """str() of a rate parses back to the same rate (it is stored in the journal that way)."""
    rate = Rate.parse(text)
    assert Rate.parse(str(rate)) == rate


def test_max_starts_is_burst_plus_rate_times_interval() -> None:
    """The stated bound: burst + rate x T requests in any window of T seconds."""
    limits = ClassLimits(Rate(100, 60.0), burst=20)
    assert limits.max_starts(60.0) == pytest.approx(120.0)


@pytest.mark.parametrize(
    ("method", "endpoint_class"),
    [
        ("GET", EndpointClass.READ),
        ("get", EndpointClass.READ),
        ("POST", EndpointClass.WRITE),
        ("DELETE", EndpointClass.WRITE),
        ("PATCH", EndpointClass.WRITE),
    ],
)
def test_methods_map_to_classes(method: str, endpoint_class: EndpointClass) -> None:
    """GET is a read; every method that changes something is a write."""
    assert EndpointClass.of_method(method) is endpoint_class
