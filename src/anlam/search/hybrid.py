"""Fusing the dense and the BM25 candidates of a query into one ranking.

Cosine similarities and BM25 scores live on unrelated scales, so the two sides are made
comparable first, in one of three ways: by rank (reciprocal rank fusion, Cormack et al. 2009:
``w / (k + rank)``), or by score rescaled per query to [0, 1] over the side's candidates
(``minmax``) or to zero mean and unit spread (``zscore``) and then mixed as ``(w * dense + bm25) /
(w + 1)`` (Bruch et al. 2023 find such a convex combination at least as good as RRF). A candidate
that one side did not return counts as that side's worst candidate (0 under RRF).

The defaults were chosen by ``benchmarks/search.py`` on ten dev query sets at once: the base
and the shipped model, each on ML-TR dev (user questions -> definitions) and four d2l-tr dev
tasks over real Turkish ML prose (heading -> its section's paragraphs, first sentence -> the rest
of the paragraph, a chapter summary's statement or an exercise question -> its section), among
700 settings (RRF with k 1 to 60, min-max and z-score mixing; dense weights 0.25 to 3; 10 to 100
candidates; with and without the query-length pivot). The rule: never below the better single
side on any set, then the best mean MRR@10. z-score mixing with dense weight 1.25 at four words
and 100 candidates per side won (mean MRR@10 0.644, at least +0.002 over the better side on
every set; bank dev +0.049 / +0.043 for base / shipped model). The previous default, RRF with
k = 10 and dense weight 3 chosen on bank dev alone, was 0.063 below BM25 on the exercise
questions (mean 0.617); no fixed weight was never worse: short queries (headings, two or three
words) want the dense side, long ones (sentences, exercises) BM25, hence the pivot. Test,
reported once: hybrid minus the better side +0.032 / +0.019 on the bank, -0.016 to +0.012 on the
d2l-tr sets (below BM25 on headings, where test has BM25 ahead of dense, unlike dev); tables in
docs/search.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = ["CANDIDATES", "DENSE_WEIGHT", "METHOD", "METHODS", "PIVOT", "RRF_K", "Fusion", "fuse", "fuse_pairs"]

Method = Literal["rrf", "minmax", "zscore"]
METHODS = ("rrf", "minmax", "zscore")
METHOD: Method = "zscore"
RRF_K = 10
DENSE_WEIGHT = 1.25
CANDIDATES = 100
PIVOT = 4


@dataclass(frozen=True)
class Fusion:
    """How two candidate lists become one.

    Attributes:
        method: "rrf", "minmax" or "zscore" (see the module).
        dense_weight: the dense side's weight against BM25's 1, for a query of ``pivot`` words.
        k: RRF's constant.
        depth: how many of each side's best candidates take part.
        pivot: a query of ``n`` words (``lexical.query_words``) weighs dense ``dense_weight *
            pivot / n``: the more words, the more BM25 has to go on. ``None``: one weight for all.
    """

    method: Method = METHOD
    dense_weight: float = DENSE_WEIGHT
    k: float = RRF_K
    depth: int = CANDIDATES
    pivot: int | None = PIVOT

    def weights(self, words: np.ndarray | None) -> np.ndarray | float:
        """The dense side's weight for queries of ``words`` words each (a column, one row per query)."""
        if self.pivot is None or words is None:
            return self.dense_weight
        return self.dense_weight * self.pivot / np.maximum(np.asarray(words, dtype=np.float64), 1.0)[:, None]


def fuse(dense: np.ndarray, bm25: np.ndarray, fusion: Fusion = Fusion(), words: np.ndarray | None = None,
         ) -> np.ndarray:
    """Fused scores of candidates, higher is better, one row per query.

    ``dense`` and ``bm25`` are ``(queries, candidates)`` arrays of each side's raw scores with
    NaN where that side did not return the candidate; a side's candidates below its ``depth``
    best are dropped. Candidates neither side keeps get NaN. ``words``: each query's word count
    (``lexical.query_words``), for ``fusion.pivot``; without it every query weighs as ``pivot`` words.
    """
    if fusion.method not in METHODS:
        raise ValueError(f"unknown fusion method {fusion.method!r}; use one of {', '.join(METHODS)}")
    sides = [_top(np.asarray(side, dtype=np.float64), fusion.depth) for side in (dense, bm25)]
    if not sides[0].size:
        return sides[0]
    if fusion.method == "rrf":
        parts = [np.nan_to_num(1.0 / (fusion.k + _ranks(side)), nan=0.0) for side in sides]
    else:
        parts = [_rescale(side, fusion.method) for side in sides]
    weight = fusion.weights(words)
    fused = (weight * parts[0] + parts[1]) / (weight + 1.0)
    return np.where(np.isnan(sides[0]) & np.isnan(sides[1]), np.nan, fused)


def _ranks(scores: np.ndarray) -> np.ndarray:
    """1 for each row's best score, 2 for the next, ... (ties in column order); NaN stays NaN."""
    order = np.argsort(np.where(np.isnan(scores), np.inf, -scores), axis=1, kind="stable")
    ranks = np.empty_like(scores)
    np.put_along_axis(ranks, order, np.arange(1, scores.shape[1] + 1, dtype=np.float64)[None, :], axis=1)
    return np.where(np.isnan(scores), np.nan, ranks)


def _top(scores: np.ndarray, depth: int) -> np.ndarray:
    """``scores`` with everything below each row's ``depth`` best set to NaN (ties at the cut stay)."""
    if scores.shape[1] <= depth:
        return scores
    filled = np.where(np.isnan(scores), -np.inf, scores)
    cut = -np.partition(-filled, depth - 1, axis=1)[:, depth - 1 : depth]
    return np.where(filled >= cut, scores, np.nan)


def _rescale(scores: np.ndarray, method: Method) -> np.ndarray:
    """Per row: min-max to [0, 1] or z-scores; a missing candidate gets the row's lowest value (0 if none)."""
    present = ~np.isnan(scores)
    safe = np.where(present.any(axis=1, keepdims=True), scores, 0.0)  # a row with no scores: no NaN warnings
    if method == "minmax":
        centre = np.nanmin(safe, axis=1, keepdims=True)
        spread = np.nanmax(safe, axis=1, keepdims=True) - centre
    else:
        centre, spread = np.nanmean(safe, axis=1, keepdims=True), np.nanstd(safe, axis=1, keepdims=True)
    out = (scores - centre) / np.where(spread > 0, spread, 1.0)  # all alike: all 0
    floor = np.nanmin(np.where(present, out, np.inf), axis=1, keepdims=True)
    return np.where(present, out, np.where(np.isfinite(floor), floor, 0.0))


def fuse_pairs(dense: Sequence[tuple[int, float]], bm25: Sequence[tuple[int, float]],
               fusion: Fusion = Fusion(), words: int | None = None) -> list[tuple[int, float]]:
    """One query's ``(id, score)`` lists (best first) fused into one, best first (ties: dense order first);
    ``words``: the query's word count (see ``fuse``)."""
    ids = list(dict.fromkeys([i for i, _ in dense] + [i for i, _ in bm25]))
    column = {item: j for j, item in enumerate(ids)}
    scores = np.full((2, len(ids)), np.nan)
    for row, pairs in enumerate((dense, bm25)):
        for item, score in pairs:
            scores[row, column[item]] = score
    fused = fuse(scores[:1], scores[1:], fusion, None if words is None else np.array([words]))[0]
    order = np.argsort(-np.nan_to_num(fused, nan=-np.inf), kind="stable")
    return [(ids[j], float(fused[j])) for j in order if not np.isnan(fused[j])]
