"""Small file helpers: atomic writes, the rule for output folders, and strict UTF-8 reading.

Everything anlam writes goes to a temporary sibling first and is renamed into place, so an
interrupted or failed command never leaves a half-written file behind; a folder it writes
replaces only an earlier output of the same command (``output_folder``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from anlam.errors import AnlamError

PathLike = Path | str


@contextlib.contextmanager
def atomic_path(target: PathLike) -> Iterator[Path]:
    """Yield a temporary file next to ``target``; rename it onto ``target`` only on success.

    An explicitly named output file is replaced; a folder at ``target`` is an ``AnlamError``.
    Folders are written through ``output_folder``.
    """
    target = check_output_file(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    tmp.chmod(0o644)  # mkstemp makes it private (0600); a written file should read like any other
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def check_output_file(target: PathLike) -> Path:
    """``target`` as a ``Path``, refused (``AnlamError``) when a folder is there instead of a file."""
    target = Path(target)
    if target.is_dir():
        raise AnlamError(f"{target}: is a folder, not a file; give a file name")
    return target


# ---------------------------------------------------------------- output folders
#
# The one rule for every command that writes a folder: the folder may be new or empty, or hold an
# earlier output of the same command (known by its marker file), which is replaced only with
# ``--overwrite``. Anything else -- a user's files, another command's output, the command's own
# input, the current folder -- is refused before any work, and nothing is touched.


@dataclass(frozen=True)
class OutputKind:
    """A kind of folder anlam writes, known by the marker file every such folder holds.

    Attributes:
        command: the command that writes it, as messages name it.
        marker: the file that marks the folder as this kind.
        also: further markers of the same kind (a training run that has not finished yet).
        match: for a marker with a generic name, what its JSON object must satisfy.
        writes_marker: ``output_folder`` adds the marker itself (False: the command writes it,
            with content).
    """

    command: str
    marker: str
    also: tuple[str, ...] = ()
    match: Callable[[dict], bool] | None = None
    writes_marker: bool = False

    def holds(self, folder: Path) -> bool:
        """True when ``folder`` holds this kind of output."""
        if self.match is None:
            return any((folder / name).is_file() for name in (self.marker, *self.also))
        try:
            data = json.loads((folder / self.marker).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return isinstance(data, dict) and self.match(data)


DATA_BUILD = OutputKind("anlam data build", "stats.json",
                        match=lambda d: {"seed", "pairs_per_split", "triplets_per_split"} <= d.keys())
D2L_EXTRACT = OutputKind("anlam data d2l", "anlam_d2l.json", writes_marker=True)
EVAL_REPORT = OutputKind("anlam eval", "report.json", match=lambda d: {"models", "split", "metrics"} <= d.keys())
MTEB_RESULTS = OutputKind("anlam mteb", "anlam_mteb.json", writes_marker=True)
TRAINING_RUN = OutputKind("anlam train", "anlam_training.json", also=("anlam_training.started.json",))
EXPORT = OutputKind("anlam export", "anlam_export.json")
PRUNED_MODEL = OutputKind("anlam base prune-vocab", "anlam_prune.json")
SEARCH_INDEX = OutputKind("anlam index build", "manifest.json",  # anlam.search.index's MANIFEST and FORMAT
                          match=lambda d: str(d.get("format", "")).startswith("anlam-index/"))
# the built-in models, each at its fixed place under $ANLAM_HOME/models (rebuilt there by design)
BASE_MODEL = OutputKind("anlam base build", "model.safetensors")
SHIPPED_MODEL = OutputKind("anlam base build", "anlam_shipped.json")
# the kinds a user names with --out; a refusal says which of them is in the way
OUTPUT_KINDS = (DATA_BUILD, D2L_EXTRACT, EVAL_REPORT, MTEB_RESULTS, TRAINING_RUN, EXPORT, PRUNED_MODEL, SEARCH_INDEX)


def check_output_folder(out: PathLike, kind: OutputKind, overwrite: bool = False,
                        inputs: Iterable[object] = ()) -> bool:
    """Check that ``kind`` may be written to ``out``; True when an earlier output there will be replaced.

    Args:
        overwrite: replace an earlier output of the same kind.
        inputs: what the command reads (paths; anything else is skipped); ``out`` may be none of
            them and hold none of them.

    Raises:
        AnlamError: ``out`` is not a folder, is an input, holds an input or the current folder,
            holds anything but an earlier output of ``kind``, or holds one and ``overwrite`` is False.
    """
    out = Path(out)
    if out.is_symlink():
        raise AnlamError(f"{out}: is a link; give the folder it points to as --out")
    if not out.exists():
        return False
    if not out.is_dir():
        raise AnlamError(f"{out}: exists and is not a folder; choose another --out")
    where = out.resolve()
    for item in inputs:
        if not isinstance(item, (str, os.PathLike)) or not Path(item).exists():
            continue  # a built-in name, a loaded model: nothing on disk to destroy
        path = Path(item).resolve()
        if path == where:
            raise AnlamError(f"{out}: is what this command reads; write the output to another folder")
        if path.is_relative_to(where):
            raise AnlamError(f"{out}: holds {item}, which this command reads; write the output to another folder")
    if Path.cwd().resolve().is_relative_to(where):
        raise AnlamError(f"{out}: is the current folder (or holds it); choose a new folder for --out")
    entries = sorted(out.iterdir())
    if not entries:
        return False
    if not kind.holds(out):
        other = next((k for k in OUTPUT_KINDS if k.holds(out)), None)
        if other is not None:
            raise AnlamError(f"{out}: holds the output of `{other.command}` ({other.marker}), not of "
                             f"`{kind.command}`; choose another --out")
        names = [e.name + ("/" if e.is_dir() else "") for e in entries]
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        raise AnlamError(f"{out}: not empty and not an output of `{kind.command}` (holds {shown}); "
                         "choose a new or empty folder for --out")
    if not overwrite:
        raise AnlamError(f"{out}: holds an earlier output of `{kind.command}`; add --overwrite to replace it")
    return True


@contextlib.contextmanager
def output_folder(out: PathLike, kind: OutputKind, overwrite: bool = False,
                  inputs: Iterable[object] = ()) -> Iterator[Path]:
    """Yield a fresh temporary folder next to ``out``; on success it becomes ``out`` in one rename.

    ``out`` is checked by ``check_output_folder`` before and again just before the swap (a long run
    must not replace what appeared meanwhile); an earlier output is moved aside, then removed.
    """
    out, inputs = Path(out), list(inputs)
    check_output_folder(out, kind, overwrite, inputs)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    tmp.chmod(0o755)
    try:
        yield tmp
        if kind.writes_marker:
            write_json(tmp / kind.marker, {"written_by": kind.command})
        check_output_folder(out, kind, overwrite, inputs)
        if out.exists():
            old = tmp.with_name(tmp.name + ".old")
            os.replace(out, old)
            try:
                os.replace(tmp, out)
            except BaseException:
                os.replace(old, out)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_text(target: PathLike, text: str) -> None:
    """Write UTF-8 text atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(target: PathLike, data: object) -> None:
    """Write pretty JSON (UTF-8, Turkish letters kept as they are) atomically."""
    write_text(target, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def decode_utf8(data: bytes, source: str, first_line: int = 1) -> str:
    """``data`` as UTF-8 (a leading byte-order mark dropped); invalid UTF-8 is an ``AnlamError`` naming ``source`` and the line.

    ``first_line`` is the line ``data`` starts on, for a piece of a larger file.
    """
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = first_line + data[: exc.start].count(b"\n")
        raise AnlamError(f"{source}: line {line}: invalid UTF-8") from None


def read_text_file(path: PathLike) -> str:
    """Read a UTF-8 file; a missing file or invalid UTF-8 is an ``AnlamError`` naming it."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise AnlamError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    return decode_utf8(data, str(path))


def read_json_file(path: PathLike) -> object:
    """JSON from a UTF-8 file; an unreadable file or invalid JSON is an ``AnlamError`` naming it and the line."""
    try:
        return json.loads(read_text_file(path))
    except json.JSONDecodeError as exc:
        raise AnlamError(f"{path}: line {exc.lineno}: not JSON ({exc.msg})") from None


def read_json_object(path: PathLike) -> dict:
    """A JSON object from a UTF-8 file; unreadable, invalid JSON or another type is an ``AnlamError`` naming it."""
    data = read_json_file(path)
    if not isinstance(data, dict):
        raise AnlamError(f"{path}: expected a JSON object")
    return data
