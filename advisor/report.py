"""Drawing reports with rich: the pieces every command's report shares, and the plugin table.

Every function takes the console to draw on, so tests can capture the output. Untrusted
text (from plugins, answers, file names) is always wrapped in ``Text``, never parsed as
markup. Each command family draws its own report (``advisor.assess.report``,
``advisor.nixos.report``, ``advisor.install.report``) with these pieces.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from advisor.pluginmanager import PluginRecord, Status

_STATUS_STYLE = {
    Status.ACTIVE: "green",
    Status.DISABLED: "dim",
    Status.BROKEN: "bold red",
    Status.INCOMPATIBLE: "bold yellow",
}
BAR_WIDTH = 20


def bar(value: float, maximum: float, style: str) -> Text:
    filled = round(BAR_WIDTH * value / maximum) if maximum > 0 else 0
    return Text("█" * filled, style=style) + Text("·" * (BAR_WIDTH - filled), style="dim")


def indent(renderable: RenderableType, width: int = 2) -> Padding:
    # expand=False: no trailing spaces to the console width in piped output.
    return Padding(renderable, (0, 0, 0, width), expand=False)


def heading(console: Console, title: str) -> None:
    console.print()
    console.print(Text(title, style="bold underline"))


def bullets(console: Console, rows: Sequence[tuple[Text, Text]]) -> None:
    """Marked lines with a hanging indent: the mark in one column, the text in the next."""
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column()
    for mark, text in rows:
        grid.add_row(mark, text)
    console.print(indent(grid))


def _provides(record: PluginRecord) -> list[str]:
    """What a plugin contributes, one item a line: each backend (``backend luks``) and
    unlock method (``unlock tpm2``) by name, its other hooks by what they add (``axes``)."""
    named = {"advisor_backends": "backend", "advisor_unlock_methods": "unlock"}
    names = {"advisor_backends": record.backends, "advisor_unlock_methods": record.unlock_methods}
    lines = []
    for hook in record.hooks:
        if hook in named:
            lines += [f"{named[hook]} {name}" for name in names[hook]]
        else:
            lines.append(hook.removeprefix("advisor_"))
    return lines


def render_plugins(console: Console, records: Sequence[PluginRecord]) -> None:
    """A table of every plugin, then the reason of each that is not active.

    The reasons go below the table, one paragraph each: in a table cell they would be cut
    to the column's width (80 columns in all without a terminal), and a reason is what
    the reader needs whole. Cells fold rather than end in an ellipsis, for the same reason.
    """
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("Plugin", no_wrap=True)
    # The version under the distribution: a column of its own would push the table past
    # 80 columns and fold the distribution's name mid-word.
    longest = max((len(r.distribution or "(core)") for r in records), default=6)
    table.add_column("Distribution", overflow="fold", min_width=min(longest, 30))
    table.add_column("Status", no_wrap=True)
    table.add_column("Provides", overflow="fold")
    for record in records:
        source = Text(record.distribution or "(core)")
        if record.version:
            source += Text(f"\n{record.version}", style="dim")
        table.add_row(
            Text(record.name, style="bold"),
            source,
            Text(str(record.status), style=_STATUS_STYLE[record.status]),
            # One per line: the columns stay narrow enough for 80 columns.
            Text("\n".join(_provides(record)) or "-"),
        )
    console.print(table)
    for record in records:
        if record.reason:
            console.print()
            console.print(
                Text.assemble(
                    (record.name, "bold"),
                    " is ",
                    (str(record.status), _STATUS_STYLE[record.status]),
                    f": {record.reason}",
                )
            )
