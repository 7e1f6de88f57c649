"""Static embeddings: a model2vec distillation over a Turkish vocabulary.

The vocabulary is the model's pieces that Turkish and English text uses (see ``vocab``) plus
whole Turkish words that the corpus repeats, each embedded once by the transformer. The result
is a plain model2vec / sentence-transformers folder (``StaticEmbedding`` -> ``Normalize``):
an embedding is the mean of its tokens' vectors, so it costs a table look-up per token.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from anlam.export.corpus import word_list
from anlam.export.vocab import prune_model
from anlam.io import write_json

logger = logging.getLogger(__name__)


def export_static(st_model, out: Path, texts: Sequence[str], pca_dims: int | None = 256, min_count: int = 2) -> dict:
    """Distill a loaded SentenceTransformer into static embeddings in the empty folder ``out``.

    Args:
        st_model: the source model; its vocabulary is pruned in place first.
        texts: Turkish text: decides the kept pieces and the added words.
        pca_dims: output dimension after PCA (``None`` keeps the model's).
        min_count: a word joins the vocabulary when the corpus has it this often.

    Returns:
        The manifest written to ``out/anlam_export.json``.
    """
    from model2vec.distill import distill_from_model

    pruned = prune_model(st_model, texts)
    words = word_list(texts, min_count=min_count)
    logger.info("static vocabulary: %d pieces + %d Turkish words", pruned["pieces_after"], len(words))
    module = st_model[0]
    dims = None if pca_dims is None or pca_dims >= st_model.get_embedding_dimension() else pca_dims
    static = distill_from_model(model=module.auto_model, tokenizer=module.tokenizer, vocabulary=words,
                                device="cpu", pca_dims=dims, quantize_to="float32")
    static.save_pretrained(str(out))
    (out / "1_Normalize").mkdir(exist_ok=True)
    manifest = {
        "format": "static",
        "runtime": "model2vec",
        "file": "model.safetensors",
        "pieces": pruned["pieces_after"],
        "words": len(words),
        "vocabulary": int(static.embedding.shape[0]),
        "dimension": int(static.embedding.shape[1]),
    }
    write_json(out / "config_sentence_transformers.json", {
        "prompts": {}, "default_prompt_name": None, "similarity_fn_name": "cosine", "model_type": "SentenceTransformer",
    })
    write_json(out / "anlam_export.json", manifest)
    return manifest
