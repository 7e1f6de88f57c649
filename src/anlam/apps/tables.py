"""Text columns of the tables the apps read (pairs, labelled intents, corpora), checked cell by cell."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from anlam.data import read_table
from anlam.errors import AnlamError

PathLike = Path | str


def read_text_columns(path: PathLike, columns: Sequence[str], hint: str = "") -> list[list[str]]:
    """The given columns of a CSV/TSV/JSONL/Parquet file, each a list of non-empty strings.

    Raises:
        AnlamError: unreadable file, a missing column (``hint`` appended), no rows, or an empty
            or non-text cell (file, 1-based data row and column named).
    """
    frame = read_table(path)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise AnlamError(f"{path}: no column {', '.join(map(repr, missing))} "
                         f"(columns: {', '.join(map(str, frame.columns))}){hint}")
    if frame.empty:
        raise AnlamError(f"{path}: no rows")
    out = []
    for column in columns:
        values = frame[column].tolist()
        for row, value in enumerate(values, start=1):
            if not isinstance(value, str) or not value.strip():
                raise AnlamError(f"{path}: row {row}: column {column!r}: empty or not text")
        out.append(values)
    return out
