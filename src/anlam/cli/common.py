"""Helpers the command modules share: printing JSON lines and tables (texts are read by ``anlam.data.read_texts``)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence

from rich.console import Console
from rich.table import Table

stderr = Console(stderr=True)
stdout = Console(highlight=False)


def print_jsonl(records: Iterable[object]) -> None:
    """One compact JSON document per line on stdout, Turkish letters kept."""
    out = sys.stdout
    for record in records:
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
    out.flush()


def print_table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """A rich table on stdout."""
    table = Table(title=title)
    for column in columns:
        table.add_column(str(column))
    for row in rows:
        table.add_row(*[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row])
    stdout.print(table)
