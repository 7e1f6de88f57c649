"""``model_checksum``: one identity for a model folder's weights.

Two things are keyed by it: the int8 export built on first use (``anlam.export.fast``) and the
paraphrase calibration fitted for a model (``anlam.apps.paraphrase``, with the calibrations shipped
for the built-in models in ``anlam/data/calibrations``). Both must change when the model's numbers
can change and stay put when only its card, plots or anlam's own records do.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from anlam.io import write_json
from anlam.models.base import anlam_home

logger = logging.getLogger(__name__)

PathLike = Path | str


def checksum_memo_file() -> Path:
    """Where file digests are remembered between processes: ``$ANLAM_HOME/cache/checksums.json``."""
    return anlam_home() / "cache" / "checksums.json"


def model_checksum(folder: PathLike) -> str:
    """sha256 over the files that make a sentence-transformers folder's model.

    The folder's own files (weights, configs, tokenizer) and those of the modules ``modules.json``
    names; not README.md, pictures, anlam's own records (``anlam_*.json``, the calibration among them)
    or training checkpoints. Each file's digest is remembered by path, size and modification time
    (``checksum_memo_file``), so a command does not read 500 MB of weights every time it starts.
    """
    root = Path(folder).resolve()
    files = [p for p in root.iterdir() if p.is_file() and _counts(p.name)]
    try:
        modules = json.loads((root / "modules.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        modules = []
    for entry in modules if isinstance(modules, list) else []:
        sub = root / str(entry.get("path", "")) if isinstance(entry, dict) else root
        if sub != root and sub.is_dir() and sub.resolve().is_relative_to(root):
            files += [p for p in sub.rglob("*") if p.is_file() and _counts(p.name)]
    memo_file = checksum_memo_file()
    try:
        memo = json.loads(memo_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        memo = {}
    if not isinstance(memo, dict):
        memo = {}
    digest, changed = hashlib.sha256(), False
    for path in sorted(set(files)):
        stat = path.stat()
        key = f"{path}|{stat.st_size}|{stat.st_mtime_ns}"
        if key not in memo:
            with path.open("rb") as handle:
                memo[key] = hashlib.file_digest(handle, "sha256").hexdigest()
            changed = True
        digest.update(path.relative_to(root).as_posix().encode("utf-8") + b"\0" + memo[key].encode("ascii"))
    if changed:
        memo = {key: value for key, value in memo.items() if Path(key.split("|")[0]).is_file()}  # forget deleted files
        try:
            write_json(memo_file, memo)
        except OSError as exc:  # a read-only home: hash again next time
            logger.info("cannot remember checksums in %s (%s)", memo_file, exc.strerror or exc)
    return digest.hexdigest()


def _counts(name: str) -> bool:
    return not (name.startswith((".", "anlam_")) or name == "README.md" or name.endswith((".png", ".md")))
