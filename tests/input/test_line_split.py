"""``LineReader._split`` splits exactly as the one-match-at-a-time reference did."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from flexpay_batch.input.lines import LineReader

_NEWLINE = re.compile(r"\r\n|\r|\n")


def _reference_split(text: str, final: bool) -> tuple[str, list[str]]:
    lines: list[str] = []
    start = 0
    for match in _NEWLINE.finditer(text):
        if match.end() == len(text) and match.group() == "\r" and not final:
            break  # the "\n" of a "\r\n" may be in the next chunk
        lines.append(text[start : match.end()])
        start = match.end()
    return text[start:], lines


@given(st.text(alphabet='ab\r\n"\x00\u2028\x85é,', max_size=40), st.booleans())
@settings(max_examples=2000)
def test_split_matches_the_reference(text: str, final: bool) -> None:
    """Lines keep their terminators; a trailing lone CR waits for the next chunk unless final."""
    assert LineReader._split(text, final) == _reference_split(text, final)


@given(
    st.lists(st.text(alphabet='ab"\x00\u2028\x85é,', max_size=6), max_size=8),
    st.sampled_from(["\n", "\r\n", "\r"]),
    st.sampled_from(["", "\r", "\n", "\r\n", "x", "x\r"]),
    st.booleans(),
)
@settings(max_examples=1000)
def test_split_of_uniform_line_ends_matches_the_reference(
    parts: list[str], terminator: str, tail: str, final: bool
) -> None:
    """Texts whose lines all end alike (the fast paths), with every kind of unfinished end."""
    text = terminator.join(parts) + tail
    assert LineReader._split(text, final) == _reference_split(text, final)
