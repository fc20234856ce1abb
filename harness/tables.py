"""Print a rich table so that it stays readable at the console's width (an 80-column CI log).

A table whose columns fit (each column as wide as its longest word, header included) prints as
it is, wrapping at spaces. One that does not would have rich cut its headers and numbers to
"sou…", "1,2…"; it prints instead its title, then one block per row, a line per column
("header  value", long values folded), which fits any width.
"""
from __future__ import annotations

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

_UNBOUNDED = 100_000


def print_table(console: Console, table: Table) -> None:
    if table_fits(console, table):
        console.print(table)
        return
    if table.title:
        console.print(table.title, style="italic", markup=False, highlight=False)
    headers = [_plain(c.header) for c in table.columns]
    for i, row in enumerate(zip(*(list(c.cells) for c in table.columns))):
        block = Table(box=None, show_header=False, pad_edge=False, padding=(0, 2, 0, 0))
        block.add_column(style="bold", no_wrap=True)
        block.add_column(overflow="fold")
        for header, cell in zip(headers, row):
            block.add_row(header, cell)
        if i:
            console.print()
        console.print(block)


def table_fits(console: Console, table: Table) -> bool:
    """Whether every column gets at least its longest word at the console's width."""
    needed = Measurement.get(console, console.options.update_width(_UNBOUNDED), table).minimum
    return needed <= console.width


def _plain(header) -> str:
    text = header.plain if isinstance(header, Text) else str(header)
    return " ".join(text.split())
