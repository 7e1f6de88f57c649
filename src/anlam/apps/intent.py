"""Intent matching: a few example utterances per intent, nearest centroid or k-NN, and "unknown".

An intents file maps each intent name to its examples (YAML)::

    iade_talebi:
      - Ürünü iade etmek istiyorum.
      - Param ne zaman geri yatar?

A text gets every intent's score (cosine to the intent's centroid, or the mean cosine of its
``k`` most similar examples) and the best intent, or "unknown" when it is out of scope.

Out of scope is decided against out-of-scope texts, not against the examples alone: a raw
cosine says little by itself (e5 puts most pairs of Turkish sentences above 0.8, and a short
question scores lower against passage-like examples than the examples score against each
other). So each text is also compared with its ``NEIGHBOURS`` nearest texts of an out-of-scope
reference (300 everyday Turkish sentences shipped in ``anlam/samples/out_of_scope_tr.txt``),
and it is "unknown" when its best intent score exceeds that by less than the threshold. The
automatic threshold is placed so that ``REJECT`` (95 %) of the reference texts, each held out
in turn and scored as a question would be, are rejected, but never so high that it would reject
more than ``1 - KEEP`` (5 %) of the intents' own examples, each held out from its intent: where the
intents are everyday Turkish themselves (a shop's helpdesk), the reference sits close to them, and
a threshold placed on it alone turned away requests the intents answer.

An intents file may also list out-of-scope examples under "unknown": they are scored like an
intent, and a text closer to them than to every intent is "unknown" whatever the threshold.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

import numpy as np

from anlam.data import read_columns
from anlam.errors import AnlamError
from anlam.io import atomic_path, read_text_file
from anlam.models import EmbedderLike, anlam_home

logger = logging.getLogger(__name__)

PathLike = Path | str
UNKNOWN = "unknown"
METHODS = ("centroid", "knn")
AUTO, NONE = "auto", "none"
NEIGHBOURS = 10  # out-of-scope texts a text is compared with (mean cosine of the nearest)
REJECT = 0.95  # share of held-out out-of-scope reference texts the automatic threshold rejects
KEEP = 0.95  # share of held-out intent examples it must still answer (it is lowered if need be)


def load_intents(path: PathLike) -> dict[str, list[str]]:
    """Read an intents YAML file: a mapping of intent name to a list of example utterances.

    An entry named "unknown" lists out-of-scope examples (texts that should match no intent).

    Raises:
        AnlamError: malformed YAML (line named), a repeated intent name, no intent besides
            "unknown", an intent with no examples, or an example that is not a non-empty string.
    """
    import yaml

    text = read_text_file(path)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise AnlamError(f"{path}: {where}malformed YAML ({getattr(exc, 'problem', None) or exc})") from None
    if not isinstance(data, dict):
        raise AnlamError(f"{path}: expected a mapping of intent name to a list of example utterances")
    seen: set[str] = set()
    for key, _ in node.value:
        if key.value in seen:
            raise AnlamError(f"{path}: line {key.start_mark.line + 1}: intent {key.value!r} appears twice")
        seen.add(key.value)
    return _checked(data, str(path))


def _checked(intents: Mapping, source: str) -> dict[str, list[str]]:
    if not intents:
        raise AnlamError(f"{source}: no intents")
    out: dict[str, list[str]] = {}
    for name, examples in intents.items():
        if not isinstance(name, str) or not name.strip():
            raise AnlamError(f"{source}: intent name {name!r} is not text (quote it)")
        if isinstance(examples, str) or not isinstance(examples, Sequence):
            raise AnlamError(f"{source}: intent {name!r}: expected a list of example utterances")
        if not examples:
            raise AnlamError(f"{source}: intent {name!r} has no examples")
        for i, example in enumerate(examples, start=1):
            if not isinstance(example, str) or not example.strip():
                raise AnlamError(f"{source}: intent {name!r}, example {i}: empty or not text")
        out[name] = list(examples)
    if not set(out) - {UNKNOWN}:
        raise AnlamError(f"{source}: no intents besides {UNKNOWN!r} (its examples are texts that match no intent)")
    return out


def out_of_scope_texts() -> list[str]:
    """The shipped out-of-scope reference: everyday Turkish no domain's intents should claim.

    150 STSb-TR train sentences (news, captions, forum posts) and 150 TQP train questions
    ("En sevdiğin şarkı ne?"), drawn by ``benchmarks/apps.py``; never in any evaluation split.
    """
    text = (files("anlam.samples") / "out_of_scope_tr.txt").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def _reference_vectors(embedder: EmbedderLike, prompt: str) -> np.ndarray:
    """Embeddings of ``out_of_scope_texts()``, cached under ``$ANLAM_HOME/cache`` per model file.

    The cache saves every ``anlam intent`` call from re-embedding 300 sentences; it is keyed by
    the model's weights (path, size, modification time), the prompt and the texts, and only used
    for a local model folder. A cache that cannot be read or written is simply not used.
    """
    texts = out_of_scope_texts()
    weights = Path(embedder.path) / "model.safetensors"
    if not weights.is_file():
        return embedder.encode(texts, prompt_name=prompt)
    stat = weights.stat()
    key = hashlib.sha1("\n".join([str(weights.resolve()), str(stat.st_size), str(stat.st_mtime_ns),
                                   prompt, *texts]).encode("utf-8")).hexdigest()
    path = anlam_home() / "cache" / "out-of-scope" / f"{key}.npy"
    try:
        vectors = np.load(path, allow_pickle=False)
        if vectors.shape[0] == len(texts):
            return vectors
    except (OSError, ValueError, EOFError):
        pass  # not cached yet, or unreadable: embed again
    vectors = embedder.encode(texts, prompt_name=prompt)
    try:
        with atomic_path(path) as tmp, tmp.open("wb") as fh:
            np.save(fh, vectors)
    except (OSError, AnlamError) as exc:
        logger.debug("out-of-scope vectors not cached: %s", exc)
    return vectors


@dataclass(frozen=True)
class IntentMatch:
    """The decision for one text: ``intent`` (or "unknown"), its best ``score``, the best intents,
    and (automatic threshold only) ``out_of_scope``, its mean cosine to the nearest out-of-scope texts."""

    intent: str
    score: float
    top: list[tuple[str, float]] = field(default_factory=list)
    out_of_scope: float | None = None

    def to_dict(self) -> dict:
        out = {"intent": self.intent, "score": round(self.score, 4)}
        if self.out_of_scope is not None:
            out["out_of_scope"] = round(self.out_of_scope, 4)
        return out | {"top": [{"intent": name, "score": round(score, 4)} for name, score in self.top]}


class IntentMatcher:
    """Match texts to intents given by example utterances.

    Args:
        embedder: the model.
        intents: intent name -> example utterances; an entry "unknown" holds out-of-scope
            examples, scored like an intent: a text closer to them than to every intent is "unknown".
        method: "knn" (default: the mean cosine of each intent's ``k`` most similar examples) or
            "centroid" (cosine to the intent's mean example); knn measured better on the dev sets.
        k: neighbours per intent for "knn".
        threshold: "auto" (default): a text is "unknown" when its best score exceeds its mean
            cosine to the ``NEIGHBOURS`` nearest out-of-scope texts by less than a threshold
            that rejects ``REJECT`` of the out-of-scope reference (each text held out);
            a number: "unknown" when the best score itself is below it; ``None`` or "none":
            never "unknown".
        out_of_scope: the out-of-scope reference for "auto" (default: ``out_of_scope_texts()``).

    Raises:
        AnlamError: bad intents, method, k or threshold.
    """

    def __init__(self, embedder: EmbedderLike, intents: Mapping[str, Sequence[str]], method: str = "knn",
                 k: int = 3, threshold: float | str | None = AUTO, prompt: str = "query",
                 out_of_scope: Sequence[str] | None = None) -> None:
        if method not in METHODS:
            raise AnlamError(f"unknown intent method {method!r}; use one of {', '.join(METHODS)}")
        if k < 1:
            raise AnlamError(f"k must be at least 1, got {k}")
        self.intents = _checked(intents, "intents")
        self.unknown_examples = self.intents.pop(UNKNOWN, [])
        self.names = list(self.intents)
        self.embedder, self.method, self.k, self.prompt = embedder, method, k, prompt
        self.auto = threshold == AUTO
        # the "unknown" examples, if any, are the last group: scored like an intent, never answered
        groups = [self.intents[name] for name in self.names] + ([self.unknown_examples] if self.unknown_examples else [])
        examples = [e for group in groups for e in group]
        self._owner = np.repeat(np.arange(len(groups)), [len(group) for group in groups])
        self._examples = embedder.encode(examples, prompt_name=prompt, show_progress=len(examples) > 256)
        sums = np.stack([self._examples[self._owner == j].sum(axis=0) for j in range(len(groups))])
        self._centroids = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
        self.threshold: float | None = None
        if self.auto:
            self._reference = (_reference_vectors(embedder, prompt) if out_of_scope is None
                               else embedder.encode(list(out_of_scope), prompt_name=prompt))
            if len(self._reference) < 2:
                raise AnlamError("the automatic threshold needs at least 2 out-of-scope texts")
            self.threshold = self._auto_threshold()
        elif threshold is not None and threshold != NONE:
            try:
                self.threshold = float(threshold)
            except (TypeError, ValueError):
                raise AnlamError(f"threshold must be {AUTO!r}, {NONE!r} or a number, got {threshold!r}") from None

    @classmethod
    def from_yaml(cls, path: PathLike, embedder: EmbedderLike, **kwargs) -> IntentMatcher:
        """A matcher for the intents file at ``path`` (``load_intents``); ``kwargs`` as for the constructor.

        Raises:
            AnlamError: a malformed intents file (see ``load_intents``), or bad options.
        """
        return cls(embedder, load_intents(path), **kwargs)

    def _scores(self, vectors: np.ndarray) -> np.ndarray:
        """Scores against every group: the intents, then the "unknown" examples if there are any."""
        if self.method == "centroid":
            return vectors @ self._centroids.T
        sims = vectors @ self._examples.T
        out = np.empty((len(vectors), len(self._centroids)), dtype=np.float32)
        for j in range(len(self._centroids)):
            own = np.sort(sims[:, self._owner == j], axis=1)
            out[:, j] = own[:, -self.k:].mean(axis=1)
        return out

    def _out_of_scope(self, vectors: np.ndarray, held_out: bool = False) -> np.ndarray:
        """Mean cosine of each vector to its nearest reference texts (itself left out if ``held_out``)."""
        sims = vectors @ self._reference.T
        if held_out:
            np.fill_diagonal(sims, -np.inf)
        n = min(NEIGHBOURS, self._reference.shape[0] - held_out)
        return np.sort(sims, axis=1)[:, -n:].mean(axis=1)

    def _auto_threshold(self) -> float:
        """The lower of ``_reference_threshold`` and ``_examples_threshold``."""
        return min(self._reference_threshold(), self._examples_threshold())

    def _reference_threshold(self) -> float:
        """The ``REJECT`` quantile of (best score - out-of-scope score) over the held-out reference.

        The reference stands in for what users ask that the intents do not cover: each of its
        texts is scored as a question would be, against the rest of the reference.
        """
        best = self._scores(self._reference)[:, :len(self.names)].max(axis=1)
        excess = best - self._out_of_scope(self._reference, held_out=True)
        return float(np.quantile(excess, REJECT))

    def _examples_threshold(self) -> float:
        """The ``1 - KEEP`` quantile of the same over the intents' examples, each held out from its
        intent: the examples are what the intents do cover."""
        inside = self._examples[self._owner < len(self.names)]
        return float(np.quantile(self._held_out_examples_best() - self._out_of_scope(inside), 1 - KEEP))

    def _held_out_examples_best(self) -> np.ndarray:
        """Each intent example's best intent score with itself left out of its own intent
        (an intent's only example scores against the other intents alone)."""
        own = self._owner[self._owner < len(self.names)]
        vectors = self._examples[: len(own)]  # the intents' examples come first, "unknown" last
        scores = np.full((len(own), len(self.names)), -np.inf, dtype=np.float32)
        for j in range(len(self.names)):
            members = vectors[own == j]
            if self.method == "centroid":
                total = members.sum(axis=0)
                scores[:, j] = vectors @ (total / max(float(np.linalg.norm(total)), 1e-12))
                rest = total - members  # each member's own intent without it
                norms = np.linalg.norm(rest, axis=1)
                scores[own == j, j] = np.where(norms > 1e-12, (members * rest).sum(axis=1) / np.maximum(norms, 1e-12),
                                               -np.inf)
            else:
                sims = vectors @ members.T
                sims[own == j] = np.where(np.eye(len(members), dtype=bool), -np.inf, sims[own == j])
                top = np.sort(sims, axis=1)[:, -self.k:]
                kept = np.isfinite(top)
                scores[:, j] = np.where(kept.any(axis=1),
                                        np.where(kept, top, 0).sum(axis=1) / np.maximum(kept.sum(axis=1), 1), -np.inf)
        return scores.max(axis=1)

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """Every intent's score for every text, ``(len(texts), len(names))``."""
        return self._scores(self._encode(texts))[:, :len(self.names)]

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        return self.embedder.encode(list(texts), prompt_name=self.prompt, show_progress=len(texts) > 256)

    def match(self, texts: Sequence[str], top: int = 3) -> list[IntentMatch]:
        """The best intent for each text (or "unknown"), with the ``top`` intents and their scores."""
        if not texts:
            return []
        vectors = self._encode(texts)
        groups = self._scores(vectors)
        scores = groups[:, :len(self.names)]
        best = scores.max(axis=1)
        if self.auto:
            outside = self._out_of_scope(vectors)
            answered = best - outside >= self.threshold
        else:
            outside = np.full(len(texts), np.nan)  # no out-of-scope score without --threshold auto
            answered = best >= self.threshold if self.threshold is not None else np.ones(len(texts), dtype=bool)
        if self.unknown_examples:
            answered &= best > groups[:, -1]
        order = np.argsort(-scores, axis=1)[:, :top]
        return [IntentMatch(self.names[ranked[0]] if ok else UNKNOWN, float(score),
                            [(self.names[j], float(row[j])) for j in ranked], None if np.isnan(out) else float(out))
                for row, ranked, score, ok, out in zip(scores, order, best, answered, outside)]


def load_intent_eval(path: PathLike, intents: Sequence[str], text: str = "text", label: str = "intent"):
    """Labelled texts (columns ``text,intent``) for evaluation.

    Raises:
        AnlamError: a missing column, an empty text, or an intent that is neither in ``intents``
            nor "unknown" (row named).
    """
    texts, labels = read_columns(path, [text, label])
    known = set(intents) | {UNKNOWN}
    for row, value in enumerate(labels, start=1):
        if value not in known:
            raise AnlamError(f"{path}: row {row}: intent {value!r} is not in the intents file (nor {UNKNOWN!r})")
    return texts, labels


def evaluate_intents(matcher: IntentMatcher, texts: Sequence[str], labels: Sequence[str]) -> dict:
    """Accuracy, macro-F1 and the confusion matrix of ``matcher`` on labelled texts.

    Macro-F1 averages over every intent seen in the labels or the predictions, "unknown" included.
    ``in_scope_accuracy`` is the accuracy on the texts labelled with an intent (an "unknown"
    answer counts as wrong) and ``out_of_scope_rejected`` the share of texts labelled "unknown"
    that were answered "unknown" (``None`` when there are none of either).
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    if not texts:
        raise AnlamError("no labelled texts to evaluate")
    predicted = [m.intent for m in matcher.match(texts, top=1)]
    names = [n for n in [*matcher.names, UNKNOWN] if n in set(labels) | set(predicted)]
    gold = np.asarray(labels)
    hits = gold == np.asarray(predicted)
    inside = gold != UNKNOWN
    return {
        "accuracy": round(float(accuracy_score(labels, predicted)), 4),
        "macro_f1": round(float(f1_score(labels, predicted, labels=names, average="macro", zero_division=0)), 4),
        "in_scope_accuracy": round(float(hits[inside].mean()), 4) if inside.any() else None,
        "out_of_scope_rejected": round(float(hits[~inside].mean()), 4) if (~inside).any() else None,
        "n": len(texts),
        "threshold": None if matcher.threshold is None else round(matcher.threshold, 4),
        "labels": names,
        "confusion": confusion_matrix(labels, predicted, labels=names).tolist(),
        "predicted": predicted,
    }


def plot_confusion(labels: Sequence[str], confusion: Sequence[Sequence[int]], path: PathLike, title: str = "") -> Path:
    """Write the confusion matrix (rows: true intent, columns: predicted) as a PNG."""
    from matplotlib.figure import Figure

    matrix = np.asarray(confusion)
    size = 2.5 + 0.55 * len(labels)
    fig = Figure(figsize=(size + 1.5, size), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax, shrink=0.8)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("tahmin edilen")
    ax.set_ylabel("gerçek")
    ax.set_title(title or "Niyet karmaşıklık matrisi")
    limit = matrix.max() / 2 if matrix.size else 0
    for (i, j), value in np.ndenumerate(matrix):
        if value:
            ax.text(j, i, str(value), ha="center", va="center", color="white" if value > limit else "black", fontsize=8)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return path
