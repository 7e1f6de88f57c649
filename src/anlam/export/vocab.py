"""Vocabulary pruning: keep the SentencePiece pieces Turkish and English text uses.

e5 and bge-m3 read 100 languages through one 250k-piece Unigram vocabulary; most of its rows
(four fifths of e5-small's weights) serve other scripts. Pruning keeps every piece the corpus
uses, in its Turkish-lower, upper-case and Turkish-letter-free spellings, plus every single
Latin, Greek, digit and punctuation character, so any Turkish or English text still tokenises
with no unknown pieces. In-corpus text tokenises exactly as before (Unigram's best path only
uses kept pieces), so its embeddings do not change; other text may split differently.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from anlam.errors import AnlamError
from anlam.io import PRUNED_MODEL, output_folder, write_json
from anlam.text import ascii_fold, tr_lower, tr_upper

logger = logging.getLogger(__name__)

PathLike = Path | str
# single characters always kept: Latin (Turkish letters included), Greek, punctuation, super/subscripts,
# currency, letter-like symbols, arrows and mathematical operators
_KEPT_CHAR_RANGES = ((0x20, 0x24F), (0x370, 0x3FF), (0x2000, 0x22FF))


def _kept_char(piece: str) -> bool:
    text = piece.replace("\u2581", "")
    return len(text) <= 1 and all(any(lo <= ord(c) <= hi for lo, hi in _KEPT_CHAR_RANGES) for c in text)


def used_piece_ids(tokenizer, texts: Sequence[str], prompts: Sequence[str] = ()) -> set[int]:
    """Ids of the pieces ``texts`` use as written, Turkish-lower-cased, upper-cased and without Turkish letters.

    SentencePiece never lets a piece cross a space, so each distinct space-separated word is
    tokenised once instead of every sentence (ten times faster on a real corpus).
    """
    from tokenizers import Tokenizer

    words = {w for t in [*texts, *prompts] for v in (t, tr_lower(t), tr_upper(t), ascii_fold(t)) for w in v.split()}
    fresh = Tokenizer.from_str(tokenizer.to_str())  # no padding or truncation left over from earlier calls
    fresh.no_padding()
    fresh.no_truncation()
    ids: set[int] = set()
    for encoding in fresh.encode_batch(sorted(words), add_special_tokens=False):
        ids.update(encoding.ids)
    return ids


def _remap_processor(node: object, new_id: dict[int, int]) -> None:
    """Renumber the special-token ids a post-processor hard-codes (Template, Roberta, Bert, Sequence)."""
    if isinstance(node, dict):
        if "ids" in node and isinstance(node["ids"], list):
            node["ids"] = [new_id[i] for i in node["ids"]]
        for key in ("sep", "cls"):
            if isinstance(node.get(key), list) and len(node[key]) == 2:
                node[key][1] = new_id[node[key][1]]
        for value in node.values():
            _remap_processor(value, new_id)
    elif isinstance(node, list):
        for value in node:
            _remap_processor(value, new_id)


def prune_tokenizer(tokenizer_json: str, keep: set[int]) -> tuple[str, list[int]]:
    """A Unigram ``tokenizer.json`` holding only the ``keep`` pieces (special tokens always kept).

    Returns:
        The new tokenizer JSON and the old id of each new id (the rows to keep).

    Raises:
        AnlamError: the tokenizer is not a SentencePiece Unigram one.
    """
    data = json.loads(tokenizer_json)
    model = data["model"]
    if model.get("type") != "Unigram":
        raise AnlamError(f"vocabulary pruning needs a SentencePiece Unigram tokenizer, this one is {model.get('type')}")
    vocab = model["vocab"]
    specials = {t["id"] for t in data.get("added_tokens", [])}
    specials |= {i for i, (piece, _) in enumerate(vocab) if piece.startswith("<") and piece.endswith(">")}
    if model.get("unk_id") is not None:
        specials.add(model["unk_id"])
    kept_chars = {i for i, (piece, _) in enumerate(vocab) if _kept_char(piece)}
    old_ids = sorted(i for i in keep | specials | kept_chars if i < len(vocab))
    new_id = {old: new for new, old in enumerate(old_ids)}
    model["vocab"] = [vocab[i] for i in old_ids]
    if model.get("unk_id") is not None:
        model["unk_id"] = new_id[model["unk_id"]]
    for token in data.get("added_tokens", []):
        token["id"] = new_id[token["id"]]
    _remap_processor(data.get("post_processor"), new_id)
    return json.dumps(data, ensure_ascii=False), old_ids


def prune_model(st_model, texts: Sequence[str]) -> dict:
    """Prune a loaded SentenceTransformer's vocabulary in place to the pieces ``texts`` use.

    Returns:
        ``{"pieces_before", "pieces_after", "params_before", "params_after"}``.

    Raises:
        AnlamError: the first module is not a transformer with a fast Unigram tokenizer.
    """
    import torch
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    module = st_model[0]
    hf = getattr(module, "auto_model", None)
    tokenizer: Any = getattr(module, "tokenizer", None)
    if hf is None or not getattr(tokenizer, "is_fast", False):
        raise AnlamError("vocabulary pruning needs a transformer model with a fast (tokenizer.json) tokenizer")
    backend = tokenizer.backend_tokenizer
    params_before = sum(p.numel() for p in hf.parameters())
    keep = used_piece_ids(backend, texts, [p for p in (st_model.prompts or {}).values() if p])
    pruned_json, old_ids = prune_tokenizer(backend.to_str(), keep)
    new_id = {old: new for new, old in enumerate(old_ids)}

    embeddings = hf.get_input_embeddings()
    pad = tokenizer.pad_token_id
    rows = embeddings.weight.detach()[torch.tensor(old_ids)]
    hf.set_input_embeddings(torch.nn.Embedding.from_pretrained(rows, freeze=False, padding_idx=new_id.get(pad)))
    hf.config.vocab_size = len(old_ids)
    for name in ("pad_token_id", "bos_token_id", "eos_token_id", "sep_token_id", "cls_token_id"):
        if isinstance(getattr(hf.config, name, None), int) and getattr(hf.config, name) in new_id:
            setattr(hf.config, name, new_id[getattr(hf.config, name)])
    new_tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(pruned_json), model_max_length=tokenizer.model_max_length,
        **{k: v for k, v in tokenizer.special_tokens_map.items() if isinstance(v, str)},
    )
    if getattr(module, "processor", None) is tokenizer:  # sentence-transformers 6 keeps the tokenizer as processor
        module.processor = new_tokenizer
    else:
        module.processor.tokenizer = new_tokenizer
    return {
        "pieces_before": backend.get_vocab_size(),
        "pieces_after": len(old_ids),
        "params_before": params_before,
        "params_after": sum(p.numel() for p in hf.parameters()),
    }


def prune_vocab(model: PathLike | None, texts: Sequence[str], out: PathLike,
                check_texts: Sequence[str] | None = None, overwrite: bool = False) -> dict:
    """Save a copy of ``model`` whose vocabulary keeps only what ``texts`` (Turkish, English) use.

    Args:
        model: a sentence-transformers folder (``None``: the default built-in model).
        texts: the corpus that decides which pieces stay.
        out: the new model folder (an earlier one there only with ``overwrite``; ``anlam.io.output_folder``).
        check_texts: texts to measure the change on (default: ML-TR and STSb-TR test sentences,
            which the default corpus never sees).

    Returns:
        The report: sizes before/after, and on ``check_texts`` the share tokenised as before and
        the mean/min cosine between old and new embeddings.

    Raises:
        AnlamError: the model cannot be loaded or has no Unigram tokenizer.
    """
    from anlam.models.embedder import load_sentence_transformer

    if not texts:
        raise AnlamError("prune-vocab needs a non-empty corpus")
    st = load_sentence_transformer(model, device="cpu")
    check = list(check_texts) if check_texts is not None else default_check_texts()
    prompt = (st.prompts or {}).get("query") or None
    old_tokens = [st.tokenizer.tokenize(t) for t in check]
    before = st.encode(check, prompt=prompt, batch_size=64, convert_to_numpy=True, normalize_embeddings=True)
    source_bytes = _weights_bytes(_source_dir(model))
    report = prune_model(st, texts)
    new_tokens = [st.tokenizer.tokenize(t) for t in check]
    after = st.encode(check, prompt=prompt, batch_size=64, convert_to_numpy=True, normalize_embeddings=True)
    cosines = (before * after).sum(axis=1)
    with output_folder(out, PRUNED_MODEL, overwrite, [model]) as tmp:
        st.save_pretrained(str(tmp))
        report |= {
            "bytes_before": source_bytes,
            "bytes_after": _weights_bytes(tmp),
            "check_texts": len(check),
            "check_same_tokens": round(float(np.mean([a == b for a, b in zip(old_tokens, new_tokens)])), 4),
            "check_mean_cosine": round(float(cosines.mean()), 6),
            "check_min_cosine": round(float(cosines.min()), 6),
        }
        write_json(tmp / "anlam_prune.json", report)
    return report


def default_check_texts(limit: int = 1000) -> list[str]:
    """ML-TR and STSb-TR test sentences: text the default corpus never contains."""
    from anlam.data import mltr_pairs, stsb_tr

    texts = [*mltr_pairs("test")["sentence_0"], *stsb_tr("test")["sentence_0"]]
    return list(dict.fromkeys(texts))[:limit]


def _source_dir(model: PathLike | None) -> Path:
    from anlam.models.embedder import resolve_model_path

    return Path(resolve_model_path(model))


def _weights_bytes(folder: Path) -> int:
    weights = (".safetensors", ".bin", ".onnx", ".xml")
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.suffix in weights)
