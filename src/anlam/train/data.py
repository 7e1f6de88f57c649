"""The datasets of a run: the pairs (built-in or the user's), what the recipe mixes in, and the
typing augmentation that teaches the model Turkish typed without Turkish letters or in capitals."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from anlam.data import load_pairs, mltr_pairs, mltr_triplets
from anlam.data.d2l import d2l_blocks
from anlam.data.d2l import training_pairs as d2l_training_pairs
from anlam.data.public import stsb_tr, tqp  # direct: mypy reads anlam.data's re-export of tqp as a module
from anlam.io import PathLike
from anlam.text import ascii_fold, tr_upper
from anlam.train.recipes import Recipe

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


def _typing_twins(sentences: list[str], n: int, rng: np.random.Generator) -> pd.DataFrame:
    """(sentence, same sentence typed without Turkish letters / in capitals, 1.0)."""
    chosen = [sentences[i] for i in rng.choice(len(sentences), size=min(n, len(sentences)), replace=False)]
    rows = [(s, variant(s), 1.0) for s in chosen for variant in (ascii_fold, tr_upper) if variant(s) != s]
    return pd.DataFrame(rows, columns=["sentence_0", "sentence_1", "label"])


def _typed_like_users(pairs: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Copies of ``n`` pairs, one side ASCII-folded or capitalised, label unchanged."""
    picked = pairs.iloc[rng.choice(len(pairs), size=min(n, len(pairs)), replace=False)].copy()
    flip = rng.random(len(picked)) < 0.7
    picked["sentence_0"] = [ascii_fold(s) if f else tr_upper(s) for s, f in zip(picked["sentence_0"], flip)]
    return picked


def _with_typed_anchors(frame: pd.DataFrame, recipe: Recipe) -> pd.DataFrame:
    """With ``typing_augment``, 30 % more rows whose anchor (the query) is typed without Turkish letters; shuffled."""
    if recipe.typing_augment:
        typed = frame.sample(frac=0.3, random_state=recipe.seed).assign(anchor=lambda f: f["anchor"].map(ascii_fold))
        frame = pd.concat([frame, typed], ignore_index=True)
    return frame.sample(frac=1.0, random_state=recipe.seed).reset_index(drop=True)


def _builtin_pairs(name: str) -> pd.DataFrame:
    """ML-TR or STSb-TR train pairs; identical sides are dropped (their cosine is 1 whatever the model)."""
    pairs = mltr_pairs("train") if name == "ml-tr" else stsb_tr("train")
    pairs = pairs[pairs["sentence_0"] != pairs["sentence_1"]]
    return pairs[["sentence_0", "sentence_1", "label"]].reset_index(drop=True)


def training_data(recipe: Recipe, data: PathLike | None = None, columns: str | None = None,
                  scale: float | None = None) -> dict[str, pd.DataFrame]:
    """The named datasets of the run: ``pairs`` (unless the recipe says none), then ``triplets``,
    ``d2l-*``, ``distill`` and ``tqp`` as the recipe asks.

    ``data`` is the user's pair file (validated by ``anlam.data.load_pairs``); default the recipe's
    built-in ``pairs`` (ML-TR train, or STSb-TR train for ``sts-expert``).
    """
    rng = np.random.default_rng(recipe.seed)
    out: dict[str, pd.DataFrame] = {}
    if data or recipe.pairs != "none":
        pairs = load_pairs(data, columns, scale) if data else _builtin_pairs(recipe.pairs)
        if recipe.max_pairs and recipe.max_pairs < len(pairs):
            pairs = pairs.sample(n=recipe.max_pairs, random_state=recipe.seed)
        parts = [pairs]
        if recipe.typing_augment:
            sentences = sorted(set(pairs["sentence_0"]) | set(pairs["sentence_1"]))
            parts += [_typing_twins(sentences, recipe.typing_augment, rng),
                      _typed_like_users(pairs, recipe.typing_augment, rng)]
        if recipe.general_sts:
            parts.append(stsb_tr("train"))
        out["pairs"] = pd.concat(parts, ignore_index=True).sample(frac=1.0, random_state=recipe.seed).reset_index(drop=True)
    if recipe.triplets:
        triplets = mltr_triplets("train")
        if recipe.max_triplets and recipe.max_triplets < len(triplets):
            triplets = triplets.sample(n=recipe.max_triplets, random_state=recipe.seed)
        out["triplets"] = _with_typed_anchors(triplets, recipe)
    if recipe.d2l_pairs:
        kinds = d2l_training_pairs(recipe.d2l_pairs, recipe.seed)
        out |= {f"d2l-{kind}": kinds[kind] for kind in recipe.d2l_kinds}
        if "d2l-heading" in out:
            out["d2l-heading"] = _with_typed_anchors(out["d2l-heading"], recipe)
    if recipe.distill:
        paragraphs = d2l_blocks("train").query("kind == 'paragraph' and en != ''")
        out["distill"] = paragraphs.sample(n=min(recipe.distill, len(paragraphs)), random_state=recipe.seed)[["tr", "en"]]
    if recipe.general_tqp:
        general = tqp("train").sample(n=recipe.general_tqp, random_state=recipe.seed)
        out["tqp"] = general.rename(columns={"sentence_0": "anchor", "sentence_1": "positive"})[["anchor", "positive"]]
    return out


def distillation_targets(model: SentenceTransformer, frame: pd.DataFrame) -> pd.DataFrame:
    """``sentence`` (Turkish) and ``label``: the untrained model's embedding of the English original.

    e5's English space is its strongest; regressing the Turkish side onto it (Reimers & Gurevych,
    2020) carries that over to Turkish. The teacher is the base itself, before the first step.
    """
    prompt = (model.prompts or {}).get("query", "")
    teacher = model.encode(frame["en"].tolist(), prompt=prompt, batch_size=32, convert_to_numpy=True,
                           normalize_embeddings=True, show_progress_bar=True)
    return pd.DataFrame({"sentence": frame["tr"].tolist(), "label": list(teacher.astype(np.float32))})


def data_statistics(datasets: dict[str, pd.DataFrame]) -> dict[str, dict]:
    """Rows and label summary per dataset, for the log and the model card."""
    stats = {}
    for name, frame in datasets.items():
        entry: dict[str, object] = {"rows": len(frame), "columns": list(frame.columns)}
        if "label" in frame and pd.api.types.is_numeric_dtype(frame["label"]):
            entry["label_mean"] = round(float(frame["label"].mean()), 3)
            entry["label_histogram"] = np.histogram(frame["label"], bins=5, range=(0, 1))[0].tolist()
        stats[name] = entry
    return stats
