"""How ``--help`` looks: click's plain text, with each command's options in their panels.

typer renders help through rich when rich is installed, and its renderer imports rich's
markdown, syntax and traceback modules: about 90 ms, more than everything else ``--help``
does. click's plain formatter costs a fraction of that, prints help text as written (so
"[env FLEXPAY_BASE_URL]" is never taken for markup) and needs no terminal features. What
rich gave that plain click lacks is the grouping of a command's options under headings
(``rich_help_panel``): ``PanelledCommand`` keeps it, one section per panel.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from typer.core import TyperCommand, TyperOption

if TYPE_CHECKING:
    # typer >= 0.20 formats help with its own vendored copy of click; the types come from it.
    from typer._click import Context, HelpFormatter

_Function = TypeVar("_Function", bound=Callable[..., Any])

#: The heading of options that name no panel (click's own word).
DEFAULT_SECTION = "Options"
#: click's layout of a definition list: the widest term column, and the gap after it.
TERM_COLUMN_MAX = 30
COLUMN_SPACING = 2


class PanelledCommand(TyperCommand):
    """A command whose plain help lists its arguments, then its options panel by panel."""

    def format_options(self, ctx: Context, formatter: HelpFormatter) -> None:
        arguments: list[tuple[str, str]] = []
        sections: dict[str, list[tuple[str, str]]] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                arguments.append(record)
            else:
                # Panels in the order their first option comes; unpanelled options (click's
                # own --help is not a TyperOption) under click's "Options".
                named = param.rich_help_panel if isinstance(param, TyperOption) else None
                panel = named or DEFAULT_SECTION
                sections.setdefault(panel, []).append(record)
        if arguments:
            with formatter.section("Arguments"):
                write_definitions(formatter, arguments)
        for heading, records in sections.items():
            with formatter.section(heading):
                write_definitions(formatter, records)


def write_definitions(formatter: HelpFormatter, rows: list[tuple[str, str]]) -> None:
    """click's ``write_dl`` (terms in a column, texts wrapped beside them), except that a line
    never breaks inside a hyphenated word: "~/.local/state/flexpay-batch" or "--token-file"
    split over two lines reads as two words, and a path copied from it is wrong."""
    term_width = min(max(len(term) for term, _ in rows), TERM_COLUMN_MAX)
    indent = formatter.current_indent
    text_column = indent + term_width + COLUMN_SPACING
    wrapper = textwrap.TextWrapper(
        width=max(formatter.width - text_column, 10),
        break_on_hyphens=False,
        break_long_words=False,
    )
    for term, text in rows:
        lines = wrapper.wrap(text)
        if len(term) <= term_width and lines:
            first, lines = lines[0], lines[1:]
            formatter.write(f"{'':{indent}}{term:{term_width + COLUMN_SPACING}}{first}\n")
        else:  # a term too long for the column: its text starts on the next line
            formatter.write(f"{'':{indent}}{term}\n")
        for line in lines:
            formatter.write(f"{'':{text_column}}{line}\n")


class CommandGroup(typer.Typer):
    """A typer app whose commands print ``PanelledCommand`` help, plain text, no rich."""

    def __init__(self, **settings: Any) -> None:
        # Pretty tracebacks show local variables, and a local may hold the token.
        super().__init__(rich_markup_mode=None, pretty_exceptions_enable=False, **settings)

    def command(
        self, name: str | None = None, *, cls: type[TyperCommand] | None = None, **options: Any
    ) -> Callable[[_Function], _Function]:
        return super().command(name, cls=cls or PanelledCommand, **options)


__all__ = ["DEFAULT_SECTION", "CommandGroup", "PanelledCommand"]
