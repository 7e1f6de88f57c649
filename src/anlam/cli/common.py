"""Helpers the command modules share: reading texts, printing JSON lines and tables."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from anlam.io import parse_text_lines, read_stdin_lines, read_text_file

stderr = Console(stderr=True)
stdout = Console(highlight=False)


def gather_texts(args: Sequence[str], file: Path | None, plain: bool) -> list[str]:
    """Texts from arguments, else from ``file``, else from stdin (JSON lines, or plain lines)."""
    if args:
        return list(args)
    if file is not None:
        return parse_text_lines(read_text_file(file).splitlines(), str(file), plain)
    return parse_text_lines(read_stdin_lines(), "<stdin>", plain)


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
