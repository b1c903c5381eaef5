"""The hand-written ``__init__`` of the per-row frozen dataclasses is the generated one."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import pytest

from flexpay_batch.input.records import SourceRecord
from flexpay_batch.input.validation import ValidRow
from flexpay_batch.jobs.base import RowTask

CLASSES: list[type[Any]] = [SourceRecord, ValidRow, RowTask]


@pytest.mark.parametrize("cls", CLASSES)
def test_init_takes_the_fields_in_order_with_their_defaults(cls: type[Any]) -> None:
    """Same parameters, order and defaults as the dataclass would generate."""
    parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]
    fields = dataclasses.fields(cls)
    assert [p.name for p in parameters] == [f.name for f in fields]
    for parameter, field in zip(parameters, fields, strict=True):
        assert field.default_factory is dataclasses.MISSING
        expected = (
            inspect.Parameter.empty if field.default is dataclasses.MISSING else field.default
        )
        assert parameter.default == expected, field.name


@pytest.mark.parametrize("cls", CLASSES)
def test_init_sets_every_field_and_stays_frozen(cls: type[Any]) -> None:
    """Every field set from its argument (positional or keyword); assignment refused."""
    fields = dataclasses.fields(cls)
    values = {f.name: f"value-{i}" for i, f in enumerate(fields)}
    by_keyword = cls(**values)
    by_position = cls(*values.values())
    assert by_keyword == by_position
    assert dataclasses.asdict(by_keyword) == values
    assert repr(by_keyword).startswith(f"{cls.__name__}(")
    with pytest.raises(dataclasses.FrozenInstanceError):
        by_keyword.row = 1
    assert not hasattr(by_keyword, "__dict__")  # still slotted
