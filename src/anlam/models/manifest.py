"""An exported folder's manifest (``anlam_export.json``) and the runtime settings its numbers depend on.

Kept apart from ``anlam.models.exported`` (which needs torch and sentence-transformers) so that
asking "is this folder an export, and what is in it?" stays cheap: ``anlam.export``,
``anlam.export.fast`` and ``Embedder`` ask it before anything heavy is loaded.

The manifest names its files; a name that is not a plain file name inside the folder (``../x``,
``/etc/x``) is refused, so a manifest cannot make anlam read or write outside the folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from anlam.errors import AnlamError

PathLike = Path | str
MANIFEST = "anlam_export.json"
MODULE_TYPE = "anlam.models.exported.ExportedTransformer"  # the first module of ONNX / OpenVINO exports
# what exports written before the runtime moved to anlam.models name in their modules.json; still read
LEGACY_MODULE_TYPES = ("anlam.export.runtime.ExportedTransformer",)

PAD_MULTIPLE = 16  # OpenVINO batches are padded to a multiple of this many tokens: few shapes, little padding
# f32 for what is not int8: on CPUs with AMX or AVX512-BF16 OpenVINO otherwise runs attention, softmax and
# layer norm in bf16, which cost e5-small 0.03 STSb-TR Spearman and broke padded batches of exactly 32
# tokens (OpenVINO 2026.4, measured on a Sapphire Rapids core)
OPENVINO_CONFIG = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}


def runtime_settings() -> dict[str, Any]:
    """What decides an export's numbers besides its files; a quality verdict holds only for these."""
    return {"openvino": OPENVINO_CONFIG, "pad_multiple": PAD_MULTIPLE}


def read_manifest(folder: PathLike) -> dict[str, Any] | None:
    """The folder's export manifest, or ``None`` for an ordinary model folder.

    Raises:
        AnlamError: the manifest is unreadable, or names a file that is not a plain name inside the folder.
    """
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AnlamError(f"{path}: unreadable export manifest ({exc})") from None
    if not isinstance(manifest, dict):
        raise AnlamError(f"{path}: not an export manifest (expected a JSON object)")
    extra = manifest.get("extra_files", [])
    if not isinstance(extra, list):
        raise AnlamError(f"{path}: extra_files must be a list of file names")
    for field, name in [("file", manifest.get("file")), *(("extra_files", e) for e in extra)]:
        if field == "file" and name is None:
            continue
        if not _plain_file_name(name):
            raise AnlamError(f"{path}: {field} {name!r} is not a plain file name inside the folder; "
                             "an export manifest may only name files next to it")
    return manifest


def _plain_file_name(name: object) -> bool:
    """A single path component: no separators, not ``.``/``..``, not absolute, no drive or NUL."""
    return (isinstance(name, str) and name not in ("", ".", "..") and "\0" not in name
            and "/" not in name and "\\" not in name and ":" not in name)
