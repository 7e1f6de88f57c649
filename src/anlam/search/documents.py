"""Documents to index, read from txt, Markdown, JSONL, CSV and Parquet files (or folders of them).

A text or Markdown file is one document whose id is its path; a JSONL line, CSV row or Parquet
row is one document with a required ``text`` field, optional ``id`` and ``title`` fields, and
every other field kept as metadata for ``--filter``. Invalid UTF-8 skips the document (or the
file, for CSV) with a warning naming it, unless ``strict`` asks for an error instead.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anlam.errors import AnlamError
from anlam.text import clean

logger = logging.getLogger(__name__)

PathLike = Path | str
SUFFIXES = (".txt", ".md", ".markdown", ".jsonl", ".csv", ".parquet")
_H1 = re.compile(r"^#\s+(.+?)\s*#*\s*$", re.MULTILINE)


@dataclass
class Document:
    """One document: ``id`` is unique within an index; ``metadata`` values are JSON values."""

    id: str
    text: str
    title: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str = ""


def read_documents(paths: Iterable[PathLike], strict: bool = False) -> list[Document]:
    """Read every document under ``paths`` (files, or folders searched recursively by suffix).

    Raises:
        AnlamError: a missing or unreadable file, an unsupported suffix, a malformed record,
            a duplicate document id, or (with ``strict``) invalid UTF-8.
    """
    documents: list[Document] = []
    seen: dict[str, str] = {}
    for path in _expand(paths):
        for doc in _READERS[path.suffix.lower()](path, strict):
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
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES
                           and not any(part.startswith(".") for part in p.relative_to(path).parts))
            if not found:
                logger.warning("%s: no %s files in this folder", path, "/".join(SUFFIXES))
            yield from found
        elif not path.exists():
            raise AnlamError(f"{path}: no such file or folder")
        elif path.suffix.lower() not in _READERS:
            raise AnlamError(f"{path}: unsupported document type; use one of {', '.join(SUFFIXES)}")
        else:
            yield path


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise AnlamError(f"{path}: cannot read file ({exc.strerror or exc})") from None


def _decode(data: bytes, path: Path, strict: bool, first_line: int = 1) -> str | None:
    """``data`` as UTF-8, or ``None`` after a warning (an error with ``strict``) naming file and line."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = first_line + data[: exc.start].count(b"\n")
        message = f"{path}: line {line}: invalid UTF-8"
        if strict:
            raise AnlamError(message) from None
        logger.warning("%s; skipped (use --strict to fail instead)", message)
        return None


def _read_text(path: Path, strict: bool) -> Iterator[Document]:
    text = _decode(_read_bytes(path), path, strict)
    if text is None:
        return
    title = ""
    if path.suffix.lower() in (".md", ".markdown") and (match := _H1.search(text)):
        title = clean(match.group(1))
    yield Document(id=path.as_posix(), text=text, title=title, source=str(path))


def _read_jsonl(path: Path, strict: bool) -> Iterator[Document]:
    for number, raw in enumerate(_read_bytes(path).split(b"\n"), start=1):
        line = _decode(raw, path, strict, number) if raw.strip() else None
        if line is None or not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise AnlamError(f"{path}: line {number}: not JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise AnlamError(f"{path}: line {number}: expected a JSON object")
        yield _from_record(record, path, f"line {number}", f"{path.name}:{number}")


def _read_csv(path: Path, strict: bool) -> Iterator[Document]:
    text = _decode(_read_bytes(path), path, strict)
    if text is None:
        return
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        rows = list(reader)
    except csv.Error as exc:
        raise AnlamError(f"{path}: line {reader.line_num}: bad CSV ({exc})") from None
    _require_text(reader.fieldnames or [], path)
    for number, row in enumerate(rows, start=2):
        if None in row:
            raise AnlamError(f"{path}: line {number}: more cells than header columns")
        record = {key: value for key, value in row.items() if value not in ("", None)}
        record.setdefault("text", "")
        yield _from_record(record, path, f"line {number}", f"{path.name}:{number - 1}")


def _read_parquet(path: Path, strict: bool) -> Iterator[Document]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise AnlamError(f"{path}: cannot read Parquet file ({exc})") from None
    _require_text(table.column_names, path)
    for number, row in enumerate(table.to_pylist(), start=1):
        record = {key: value for key, value in row.items() if value is not None}
        record.setdefault("text", "")
        yield _from_record(record, path, f"row {number}", f"{path.name}:{number}")


def _require_text(columns: list[str], path: Path) -> None:
    if "text" not in columns:
        raise AnlamError(f"{path}: no 'text' column (columns: {', '.join(map(str, columns)) or 'none'})")


def _from_record(record: dict[str, Any], path: Path, where: str, default_id: str) -> Document:
    text = record.pop("text", None)
    if not isinstance(text, str):
        raise AnlamError(f'{path}: {where}: expected a string "text" field')
    doc_id = record.pop("id", default_id)
    if not isinstance(doc_id, (str, int)) or isinstance(doc_id, bool) or not str(doc_id).strip():
        raise AnlamError(f'{path}: {where}: "id" must be a non-empty string or an integer')
    title = record.pop("title", "")
    if not isinstance(title, str):
        raise AnlamError(f'{path}: {where}: "title" must be a string')
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


_READERS = {
    ".txt": _read_text,
    ".md": _read_text,
    ".markdown": _read_text,
    ".jsonl": _read_jsonl,
    ".csv": _read_csv,
    ".parquet": _read_parquet,
}
