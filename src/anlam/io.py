"""Small file helpers: atomic writes and reading texts the way every command reads them.

Everything anlam writes goes to a temporary sibling first and is renamed into place, so an
interrupted or failed command never leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from anlam.errors import AnlamError

PathLike = Path | str


@contextlib.contextmanager
def atomic_path(target: PathLike, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; rename it onto ``target`` only on success.

    With ``directory=True`` the temporary path is a fresh folder and an existing ``target``
    folder is replaced as a whole.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        tmp.chmod(0o755)
    else:
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        os.close(fd)
        tmp = Path(name)
        tmp.chmod(0o644)  # mkstemp makes it private (0600); a written file should read like any other
    try:
        yield tmp
        if directory and target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def write_text(target: PathLike, text: str) -> None:
    """Write UTF-8 text atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(target: PathLike, data: object) -> None:
    """Write pretty JSON (UTF-8, Turkish letters kept as they are) atomically."""
    write_text(target, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def read_text_file(path: PathLike) -> str:
    """Read a UTF-8 file; a missing file or invalid UTF-8 is an ``AnlamError`` naming it."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise AnlamError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise AnlamError(f"{path}: line {line}: invalid UTF-8 (byte {exc.start})") from None


def read_json_object(path: PathLike) -> dict:
    """A JSON object from a UTF-8 file; unreadable, invalid JSON or another type is an ``AnlamError`` naming it."""
    try:
        data = json.loads(read_text_file(path))
    except json.JSONDecodeError as exc:
        raise AnlamError(f"{path}: line {exc.lineno}: not JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise AnlamError(f"{path}: expected a JSON object")
    return data


def parse_text_lines(lines: Iterable[str], source: str, plain: bool, field: str = "text") -> list[str]:
    """Texts from JSON lines (``{"text": ...}``) or, with ``plain``, one text per line.

    Blank lines are skipped. A line that is not a JSON object with a non-empty string
    ``field`` raises ``AnlamError`` naming ``source`` and the line number.
    """
    texts: list[str] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if plain:
            texts.append(line.rstrip("\r\n"))
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise AnlamError(f"{source}: line {number}: not JSON ({exc.msg}); use --plain for plain text lines") from None
        if not isinstance(record, dict) or not isinstance(record.get(field), str):
            raise AnlamError(f'{source}: line {number}: expected an object with a string "{field}" field')
        texts.append(record[field])
    return texts


def read_stdin_lines(source: str = "<stdin>") -> list[str]:
    """Standard input as lines, decoded strictly as UTF-8 so bad bytes name their line."""
    import sys

    data = sys.stdin.buffer.read()
    lines = data.split(b"\n")
    out = []
    for number, raw in enumerate(lines, start=1):
        try:
            out.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise AnlamError(f"{source}: line {number}: invalid UTF-8") from None
    return out
