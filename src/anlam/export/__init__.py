"""Fast CPU inference: export a model to ONNX (fp32, int8), OpenVINO int8 or static embeddings.

Every exported folder carries ``anlam_export.json`` (``anlam.models.manifest.read_manifest``) and
loads back through ``Embedder.from_pretrained`` (``anlam.models.exported``; so ``anlam
encode/index/serve --model DIR`` accept it), and in its own runtime directly:
``onnxruntime.InferenceSession(DIR/model.onnx)``,
``openvino.Core().read_model(DIR/openvino_model.xml)``, ``model2vec.StaticModel.from_pretrained(DIR)``.

Importing this package loads neither torch nor sentence-transformers: the exporters import them
when they run.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from anlam.errors import AnlamError
from anlam.export.corpus import default_texts, unique_texts, word_list
from anlam.io import EXPORT, PRUNED_MODEL, check_output_folder, output_folder
from anlam.models.manifest import read_manifest

logger = logging.getLogger(__name__)

PathLike = Path | str
FORMATS = ("onnx", "onnx-int8", "openvino-int8", "static")

__all__ = [
    "FORMATS",
    "default_texts",
    "export_model",
    "prune_vocab",
    "unique_texts",
    "word_list",
]


def export_model(
    model: PathLike | None,
    out: PathLike,
    fmt: str,
    texts: Sequence[str] | None = None,
    calibration_size: int = 300,
    pca_dims: int | None = 256,
    overwrite: bool = False,
) -> dict:
    """Export ``model`` (a sentence-transformers folder; ``None``: the default built-in model) as ``fmt`` into ``out``.

    Args:
        fmt: one of ``FORMATS``.
        texts: Turkish text for int8 calibration (default: the train splits of ``default_texts``) and the
            static vocabulary (default: ``default_texts()``, train and dev).
        calibration_size: texts that calibrate OpenVINO's int8 activation ranges.
        pca_dims: static embeddings' dimension.
        overwrite: replace an earlier export in ``out`` (see ``anlam.io.output_folder``).

    Returns:
        The manifest written into the folder.

    Raises:
        AnlamError: an unknown format, an ``out`` that may not be written, or a model that cannot
            be exported.
    """
    from anlam.models.embedder import load_sentence_transformer

    if fmt not in FORMATS:
        raise AnlamError(f"unknown export format {fmt!r} (choose from {', '.join(FORMATS)})")
    out = Path(out)
    check_output_folder(out, EXPORT, overwrite, [model])
    if texts is None and fmt == "openvino-int8":
        texts = default_texts(splits=("train",))  # the dev sets stay unseen: the quality check runs on them
    elif texts is None and fmt == "static":
        texts = default_texts()
    if model is not None and read_manifest(model) is not None:
        raise AnlamError(f"{model}: already an exported model; export from the original model folder")
    st_model = load_sentence_transformer(model, device="cpu")
    with output_folder(out, EXPORT, overwrite, [model]) as tmp:
        if fmt == "static":
            from anlam.export.static import export_static

            manifest = export_static(st_model, tmp, texts or [], pca_dims=pca_dims)
        else:
            from anlam.export.transformer import export_transformer

            manifest = export_transformer(st_model, tmp, fmt, texts or [], calibration_size)
    logger.info("exported %s to %s", fmt, out)
    return manifest


def prune_vocab(model: PathLike | None, out: PathLike, texts: Sequence[str] | None = None,
                check_texts: Sequence[str] | None = None, overwrite: bool = False) -> dict:
    """Copy ``model`` into ``out`` keeping only the vocabulary ``texts`` (default: ``default_texts()``) uses.

    An earlier pruned model in ``out`` is replaced only with ``overwrite`` (``anlam.io.output_folder``).

    Returns:
        The size and quality report (also written to ``out/anlam_prune.json``).
    """
    from anlam.export.vocab import prune_vocab as _prune

    check_output_folder(out, PRUNED_MODEL, overwrite, [model])
    return _prune(model, texts if texts is not None else default_texts(), out, check_texts, overwrite)
