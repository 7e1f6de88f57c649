"""Fast CPU inference: export a model to ONNX (fp32, int8), OpenVINO int8 or static embeddings.

Every exported folder carries ``anlam_export.json`` and loads back through
``Embedder.from_pretrained`` (so ``anlam encode/index/serve --model DIR`` accept it), and in its
own runtime directly: ``onnxruntime.InferenceSession(DIR/model.onnx)``,
``openvino.Core().read_model(DIR/openvino_model.xml)``, ``model2vec.StaticModel.from_pretrained(DIR)``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from anlam.errors import AnlamError
from anlam.export.corpus import default_texts, read_corpus, word_list
from anlam.export.runtime import MANIFEST, load_exported, read_manifest
from anlam.io import atomic_path

logger = logging.getLogger(__name__)

PathLike = Path | str
FORMATS = ("onnx", "onnx-int8", "openvino-int8", "static")

__all__ = [
    "FORMATS",
    "MANIFEST",
    "default_texts",
    "export_model",
    "load_exported",
    "prune_vocab",
    "read_corpus",
    "read_manifest",
    "word_list",
]


def export_model(
    model: PathLike | None,
    out: PathLike,
    fmt: str,
    texts: Sequence[str] | None = None,
    calibration_size: int = 300,
    pca_dims: int | None = 256,
) -> dict:
    """Export ``model`` (a sentence-transformers folder; ``None``: the default built-in model) as ``fmt`` into ``out``.

    Args:
        fmt: one of ``FORMATS``.
        texts: Turkish text for int8 calibration and the static vocabulary (default: ``default_texts()``).
        calibration_size: texts that calibrate OpenVINO's int8 activation ranges.
        pca_dims: static embeddings' dimension.

    Returns:
        The manifest written into the folder.

    Raises:
        AnlamError: an unknown format, an output folder that holds something else, or a model
            that cannot be exported.
    """
    from anlam.models.embedder import load_sentence_transformer

    if fmt not in FORMATS:
        raise AnlamError(f"unknown export format {fmt!r} (choose from {', '.join(FORMATS)})")
    out = Path(out)
    check_output_folder(out)
    if texts is None and fmt in ("openvino-int8", "static"):
        texts = default_texts()
    if model is not None and read_manifest(model) is not None:
        raise AnlamError(f"{model}: already an exported model; export from the original model folder")
    st_model = load_sentence_transformer(model, device="cpu")
    with atomic_path(out, directory=True) as tmp:
        if fmt == "static":
            from anlam.export.static import export_static

            manifest = export_static(st_model, tmp, texts or [], pca_dims=pca_dims)
        else:
            from anlam.export.transformer import export_transformer

            manifest = export_transformer(st_model, tmp, fmt, texts or [], calibration_size)
    logger.info("exported %s to %s", fmt, out)
    return manifest


def prune_vocab(model: PathLike | None, out: PathLike, texts: Sequence[str] | None = None,
                check_texts: Sequence[str] | None = None) -> dict:
    """Copy ``model`` into ``out`` keeping only the vocabulary ``texts`` (default: ``default_texts()``) uses.

    Returns:
        The size and quality report (also written to ``out/anlam_prune.json``).
    """
    from anlam.export.vocab import prune_vocab as _prune

    check_output_folder(Path(out))
    return _prune(model, texts if texts is not None else default_texts(), out, check_texts)


def check_output_folder(out: Path) -> None:
    """Refuse to replace a folder that holds anything but a model (a typo'd ``--out .`` must not delete a project)."""
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "modules.json").exists())):
        raise AnlamError(f"{out}: exists and is not a model folder; choose a new --out")
