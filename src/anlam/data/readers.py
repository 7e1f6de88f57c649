"""Reading texts from files: the one reader behind every command and the Python API.

The suffix decides how a file is read:

- plain text (``.txt``, ``.md``, ``.markdown``): one text per line (``read_texts``), or one
  document per file (``read_documents``);
- JSON lines (``.jsonl``, ``.ndjson``, and ``-`` for standard input): one object per line, the
  text under a field;
- tables (``.csv``, ``.tsv``/``.tab``, ``.json`` holding an array of objects, ``.parquet``, a saved
  ``datasets`` folder): the text under a column.

Files are read as UTF-8 (a leading byte-order mark is dropped). Every mistake is an
``AnlamError`` in one style that names the file, the line (JSON lines; blank lines count) or the
data row (tables; 1-based, the header not counted) and the field or column, e.g.
``corpus.csv: row 7: empty text in column 'text'`` or
``sorular.jsonl: line 2: no field 'query' (fields: soru)``. Texts come back as written:
the embedder, the index and the apps normalise (NFC) where they compare texts.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from anlam.errors import AnlamError
from anlam.io import decode_utf8, read_json_file
from anlam.text import clean

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

PathLike = Path | str
STDIN = "-"
PLAIN_SUFFIXES = (".txt", ".md", ".markdown")
JSON_LINES_SUFFIXES = (".jsonl", ".ndjson")
TABLE_SUFFIXES = (".csv", ".tsv", ".tab", ".json", ".parquet")
DOCUMENT_SUFFIXES = (".txt", ".md", ".markdown", ".jsonl", ".csv", ".parquet")
_H1 = re.compile(r"^#\s+(.+?)\s*#*\s*$", re.MULTILINE)


@dataclass
class Document:
    """One document: ``id`` is unique within an index; ``metadata`` values are JSON values."""

    id: str
    text: str
    title: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str = ""


# ---------------------------------------------------------------- texts, rows, tables


def read_texts(path: PathLike, column: str | None = "text", plain: bool = False) -> list[str]:
    """The texts of one file: its lines (plain text), else the ``column`` of every JSON line or table row.

    Args:
        path: a file, a datasets folder, or ``-`` for standard input (JSON lines; plain lines with ``plain``).
        column: the field or column that holds the text; ``None`` takes every text of every
            column (blank ones skipped), for a corpus that only needs words.
        plain: one text per line whatever the suffix. Blank lines are skipped.

    Raises:
        AnlamError: a missing or unreadable file, an unsupported suffix, invalid UTF-8, a line
            that is not JSON, a missing field or column, an empty text in it, or no text at all.
    """
    path = Path(path)
    if plain or path.suffix.lower() in PLAIN_SUFFIXES:
        source, data = _read_bytes(path)
        texts = [line.rstrip("\r") for line in decode_utf8(data, source).split("\n") if line.strip()]
    else:
        table = _load(path, hint="; for one text per line use a .txt file or --plain")
        if column is not None:
            return [row[column] for row in _checked(table, path, [column]).rows]
        texts = [value for name in table.columns for row in table.rows
                 if isinstance(value := row.get(name), str) and value.strip()]
    if not texts:
        raise AnlamError(f"{_source(path)}: no texts")
    return texts


def read_records(path: PathLike, field: str) -> list[dict[str, Any]]:
    """Every JSON line or table row of ``path`` as a dict, each with a non-empty text under ``field``.

    For inputs whose other fields travel along with the text (``anlam search --queries`` echoes them).

    Raises:
        AnlamError: as ``read_texts``.
    """
    return _checked(_load(Path(path)), Path(path), [field]).rows


def read_columns(path: PathLike, columns: Sequence[str], hint: str = "") -> list[list[str]]:
    """The given columns (fields of JSON lines) of a table, each a list of non-empty texts.

    Raises:
        AnlamError: as ``read_texts``; ``hint`` follows a missing-column message.
    """
    table = _checked(_load(Path(path)), Path(path), columns, hint)
    return [[row[name] for row in table.rows] for name in columns]


def read_table(path: PathLike) -> pd.DataFrame:
    """A CSV/TSV/JSON/JSON-lines/Parquet file or a saved ``datasets`` folder as a DataFrame.

    Cells are kept as the file holds them (every CSV cell is a string); a row of JSON lines
    without some field has NaN there.

    Raises:
        AnlamError: a missing or unreadable file, an unsupported suffix, invalid UTF-8 or a
            malformed line or row (file and line/row named).
    """
    import pandas as pd

    table = _load(Path(path))
    return pd.DataFrame(table.rows, columns=table.columns)


def check_columns(path: PathLike, found: Sequence[object], wanted: Sequence[str], hint: str = "") -> None:
    """Raise ``AnlamError`` naming every column of ``wanted`` missing from ``found`` (the columns of ``path``)."""
    missing = [name for name in wanted if name not in found]
    if missing:
        kind = "field" if _json_lines(Path(path)) else "column"
        raise AnlamError(f"{_source(path)}: no {kind} {', '.join(map(repr, missing))} "
                         f"({kind}s: {', '.join(map(str, found)) or 'none'}){hint}")


# ---------------------------------------------------------------- documents


def read_documents(paths: Iterable[PathLike], strict: bool = False) -> list[Document]:
    """Every document under ``paths`` (files, or folders searched recursively by suffix).

    A text or Markdown file is one document whose id is its path (a Markdown file's first
    ``# heading`` is its title); a JSON line or CSV/Parquet row is one document with a required
    ``text`` field, optional ``id`` and ``title`` fields, and every other field kept as metadata.
    A document without text is skipped with a warning. Invalid UTF-8 skips the document (the
    file, for CSV) with a warning naming it, unless ``strict`` asks for an error instead.

    Raises:
        AnlamError: a missing or unreadable file, an unsupported suffix, a malformed record,
            a duplicate document id, or (with ``strict``) invalid UTF-8.
    """
    documents: list[Document] = []
    seen: dict[str, str] = {}
    for path in _expand(paths):
        for doc in _documents(path, strict):
            if not doc.text.strip():
                logger.warning("%s: document %r has no text, skipped", doc.source, doc.id)
                continue
            if doc.id in seen:
                raise AnlamError(f"{doc.source}: duplicate document id {doc.id!r} (first in {seen[doc.id]})")
            seen[doc.id] = doc.source
            documents.append(doc)
    return documents


def _expand(paths: Iterable[PathLike]) -> Iterator[Path]:
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in DOCUMENT_SUFFIXES
                           and not any(part.startswith(".") for part in p.relative_to(path).parts))
            if not found:
                logger.warning("%s: no %s files in this folder", path, "/".join(DOCUMENT_SUFFIXES))
            yield from found
        elif not path.exists():
            raise AnlamError(f"{path}: no such file or folder")
        elif path.suffix.lower() not in DOCUMENT_SUFFIXES:
            raise AnlamError(f"{path}: unsupported document type; use one of {', '.join(DOCUMENT_SUFFIXES)}")
        else:
            yield path


def _documents(path: Path, strict: bool) -> Iterator[Document]:
    if path.suffix.lower() in PLAIN_SUFFIXES:
        text = _decode(_read_bytes(path)[1], str(path), strict)
        if text is not None:
            match = _H1.search(text) if path.suffix.lower() != ".txt" else None
            yield Document(id=path.as_posix(), text=text, title=clean(match.group(1)) if match else "", source=str(path))
        return
    table = _load(path, strict)
    if table.skipped:
        return
    if table.unit == "row":
        check_columns(path, table.columns, ["text"])
    for i, row in enumerate(table.rows):
        yield _document(row, table, i, path)


def _document(row: dict[str, Any], table: _Table, i: int, path: Path) -> Document:
    where, kind = table.where(i), table.kind
    record = dict(row)
    if table.unit == "row":  # an empty cell is no value: no metadata, and no text (the document is skipped)
        record = {key: value for key, value in record.items() if value is not None and value != ""}
        record.setdefault("text", "")
    text = _text(record, name="text", where=where, kind=kind, empty_ok=True)
    del record["text"]
    doc_id = record.pop("id", f"{path.name}:{table.numbers[i]}")
    if not isinstance(doc_id, (str, int)) or isinstance(doc_id, bool) or not str(doc_id).strip():
        raise AnlamError(f"{where}: {kind} 'id' must be a non-empty string or an integer, not {doc_id!r}")
    title = record.pop("title", "")
    if not isinstance(title, str):
        raise AnlamError(f"{where}: {kind} 'title' holds {title!r}, not text")
    metadata = {str(key): _json_value(value) for key, value in record.items()}
    return Document(id=str(doc_id), text=text, title=clean(title), metadata=metadata, source=str(path))


def _json_value(value: Any) -> Any:
    """Keep JSON values; anything else a Parquet column can hold (dates, decimals) becomes text."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    return str(value)


# ---------------------------------------------------------------- one loader for every format


@dataclass
class _Table:
    """The rows of one file, each with the number messages give it (its line, or its data row)."""

    source: str
    columns: list[str]
    rows: list[dict[str, Any]]
    numbers: list[int]
    unit: str  # "line" (JSON lines, named by field) or "row" (tables, named by column)
    skipped: bool = False  # invalid UTF-8, read leniently: nothing was read

    @property
    def kind(self) -> str:
        return "field" if self.unit == "line" else "column"

    def where(self, i: int) -> str:
        return f"{self.source}: {self.unit} {self.numbers[i]}"


def _load(path: Path, strict: bool = True, hint: str = "") -> _Table:
    """The rows of a JSON-lines file, a table or standard input; ``hint`` follows a not-JSON message."""
    if str(path) == STDIN:
        return _read_json_lines(*_read_bytes(path), strict, hint)
    if not path.exists():
        raise AnlamError(f"{path}: no such file or folder")
    if path.is_dir():
        return _read_dataset(path)
    suffix = path.suffix.lower()
    if suffix in JSON_LINES_SUFFIXES:
        return _read_json_lines(*_read_bytes(path), strict, hint)
    if suffix in (".csv", ".tsv", ".tab"):
        return _read_csv(path, "," if suffix == ".csv" else "\t", strict)
    if suffix == ".json":
        return _read_json_array(path)
    if suffix == ".parquet":
        return _read_parquet(path)
    raise AnlamError(f"{path}: unsupported format {suffix or '(no suffix)'!r}; use "
                     f"{', '.join(JSON_LINES_SUFFIXES + TABLE_SUFFIXES)}, a datasets folder or - for standard input")


def _read_json_lines(source: str, data: bytes, strict: bool, hint: str = "") -> _Table:
    rows: list[dict[str, Any]] = []
    numbers: list[int] = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        line = _decode(raw, source, strict, number) if raw.strip() else None
        if line is None or not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise AnlamError(f"{source}: line {number}: not JSON ({exc.msg}){hint}") from None
        if not isinstance(record, dict):
            raise AnlamError(f"{source}: line {number}: expected a JSON object, not {type(record).__name__}")
        rows.append(record)
        numbers.append(number)
    return _Table(source, list(dict.fromkeys(key for row in rows for key in row)), rows, numbers, "line")


def _read_csv(path: Path, delimiter: str, strict: bool) -> _Table:
    text = _decode(_read_bytes(path)[1], str(path), strict)
    if text is None:
        return _Table(str(path), [], [], [], "row", skipped=True)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader, [])
        cells = [row for row in reader if row]  # a blank line is no row
    except csv.Error as exc:
        raise AnlamError(f"{path}: line {reader.line_num}: bad CSV ({exc})") from None
    twice = next((name for name in header if header.count(name) > 1), None)
    if twice is not None:
        raise AnlamError(f"{path}: column {twice!r} appears twice in the header")
    rows = []
    for number, row in enumerate(cells, start=1):
        if len(row) > len(header):
            raise AnlamError(f"{path}: row {number}: {len(row)} cells for {len(header)} columns")
        rows.append(dict(zip(header, row + [""] * (len(header) - len(row)))))
    return _Table(str(path), header, rows, list(range(1, len(rows) + 1)), "row")


def _read_json_array(path: Path) -> _Table:
    data = read_json_file(path)
    if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
        raise AnlamError(f"{path}: expected a JSON array of objects (one object per line goes in a .jsonl file)")
    return _Table(str(path), list(dict.fromkeys(key for row in data for key in row)), data,
                  list(range(1, len(data) + 1)), "row")


def _read_parquet(path: Path) -> _Table:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise AnlamError(f"{path}: cannot read Parquet file ({exc})") from None
    index = [name for name in (table.schema.pandas_metadata or {}).get("index_columns", []) if isinstance(name, str)]
    table = table.drop_columns(index)  # a DataFrame's saved index is not data
    return _Table(str(path), table.column_names, table.to_pylist(), list(range(1, table.num_rows + 1)), "row")


def _read_dataset(path: Path) -> _Table:
    from datasets import Dataset, load_from_disk

    try:
        data = load_from_disk(str(path))
    except (OSError, ValueError) as exc:
        raise AnlamError(f"{path}: not a saved datasets folder ({exc})") from None
    if not isinstance(data, Dataset):
        raise AnlamError(f"{path}: holds the splits {', '.join(data)}; give the folder of one of them")
    return _Table(str(path), list(data.column_names), data.to_list(), list(range(1, len(data) + 1)), "row")


def _checked(table: _Table, path: Path, names: Sequence[str], hint: str = "") -> _Table:
    """``table``, checked to have rows, each with a non-empty text under every one of ``names``."""
    if not table.rows:
        raise AnlamError(f"{table.source}: no texts")
    check_columns(path, table.columns, names, hint)
    for i, row in enumerate(table.rows):
        for name in names:
            _text(row, name=name, where=table.where(i), kind=table.kind)
    return table


def _text(row: dict[str, Any], name: str, where: str, kind: str, empty_ok: bool = False) -> str:
    """``row[name]`` if it is text (non-empty unless ``empty_ok``); else an error naming ``where`` and the field."""
    if name not in row:
        raise AnlamError(f"{where}: no {kind} {name!r} ({kind}s: {', '.join(map(str, row)) or 'none'})")
    value = row[name]
    if value is None or (isinstance(value, str) and not value.strip() and not empty_ok):
        raise AnlamError(f"{where}: empty text in {kind} {name!r}")
    if not isinstance(value, str):
        raise AnlamError(f"{where}: {kind} {name!r} holds {value!r}, not text")
    return value


def _json_lines(path: Path) -> bool:
    return str(path) == STDIN or path.suffix.lower() in JSON_LINES_SUFFIXES


def _source(path: PathLike) -> str:
    """A path as messages name it: standard input is ``<stdin>``."""
    return "<stdin>" if str(path) == STDIN else str(path)


def _read_bytes(path: Path) -> tuple[str, bytes]:
    """``(source, content)`` of a file or of standard input."""
    if str(path) == STDIN:
        return "<stdin>", sys.stdin.buffer.read()
    try:
        return str(path), path.read_bytes()
    except FileNotFoundError:
        raise AnlamError(f"{path}: no such file or folder") from None
    except OSError as exc:
        raise AnlamError(f"{path}: cannot read file ({exc.strerror or exc})") from None


def _decode(data: bytes, source: str, strict: bool, first_line: int = 1) -> str | None:
    """``data`` as UTF-8, or ``None`` after a warning naming file and line (an error with ``strict``)."""
    try:
        return decode_utf8(data, source, first_line)
    except AnlamError as exc:
        if strict:
            raise
        logger.warning("%s; skipped (use --strict to fail instead)", exc)
        return None
