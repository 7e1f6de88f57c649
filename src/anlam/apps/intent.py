"""Intent matching: a few example utterances per intent, nearest centroid or k-NN, and "unknown".

An intents file maps each intent name to its examples (YAML)::

    iade_talebi:
      - Ürünü iade etmek istiyorum.
      - Param ne zaman geri yatar?

A text gets every intent's score (cosine to the intent's centroid, or the mean cosine of its
``k`` most similar examples) and the best intent, or "unknown" when the best score is below
the abstain threshold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from anlam.apps.tables import read_text_columns
from anlam.errors import AnlamError
from anlam.io import atomic_path, read_text_file
from anlam.models import Embedder

PathLike = Path | str
UNKNOWN = "unknown"
METHODS = ("centroid", "knn")


def load_intents(path: PathLike) -> dict[str, list[str]]:
    """Read an intents YAML file: a mapping of intent name to a list of example utterances.

    Raises:
        AnlamError: malformed YAML (line named), a repeated or reserved intent name, an intent
            with no examples, or an example that is not a non-empty string.
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
        if name == UNKNOWN:
            raise AnlamError(f"{source}: {UNKNOWN!r} is reserved for texts that match no intent")
        if isinstance(examples, str) or not isinstance(examples, Sequence):
            raise AnlamError(f"{source}: intent {name!r}: expected a list of example utterances")
        if not examples:
            raise AnlamError(f"{source}: intent {name!r} has no examples")
        for i, example in enumerate(examples, start=1):
            if not isinstance(example, str) or not example.strip():
                raise AnlamError(f"{source}: intent {name!r}, example {i}: empty or not text")
        out[name] = list(examples)
    return out


@dataclass(frozen=True)
class IntentMatch:
    """The decision for one text: ``intent`` (or "unknown"), its ``score``, and the best intents."""

    intent: str
    score: float
    top: list[tuple[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"intent": self.intent, "score": round(self.score, 4),
                "top": [{"intent": name, "score": round(score, 4)} for name, score in self.top]}


class IntentMatcher:
    """Match texts to intents given by example utterances.

    Args:
        embedder: the model.
        intents: intent name -> example utterances.
        method: "centroid" (cosine to the mean example) or "knn" (mean cosine of the ``k`` most
            similar examples of each intent).
        k: neighbours per intent for "knn".
        threshold: abstain below this score; ``None`` derives it from the examples (see
            ``auto_threshold``).

    Raises:
        AnlamError: bad intents, method or k.
    """

    def __init__(self, embedder: Embedder, intents: Mapping[str, Sequence[str]], method: str = "centroid",
                 k: int = 3, threshold: float | None = None, prompt: str = "query") -> None:
        if method not in METHODS:
            raise AnlamError(f"unknown intent method {method!r}; use one of {', '.join(METHODS)}")
        if k < 1:
            raise AnlamError(f"k must be at least 1, got {k}")
        self.intents = _checked(intents, "intents")
        self.names = list(self.intents)
        self.embedder, self.method, self.k, self.prompt = embedder, method, k, prompt
        examples = [e for name in self.names for e in self.intents[name]]
        self._owner = np.repeat(np.arange(len(self.names)), [len(self.intents[n]) for n in self.names])
        self._examples = embedder.encode(examples, prompt=prompt, show_progress=len(examples) > 256)
        self._sums = np.stack([self._examples[self._owner == j].sum(axis=0) for j in range(len(self.names))])
        self._centroids = self._sums / np.maximum(np.linalg.norm(self._sums, axis=1, keepdims=True), 1e-12)
        self.threshold = float(threshold) if threshold is not None else self.auto_threshold()

    @classmethod
    def from_yaml(cls, path: PathLike, embedder: Embedder, **kwargs) -> IntentMatcher:
        """A matcher for the intents file at ``path``; ``kwargs`` as for the constructor."""
        return cls(embedder, load_intents(path), **kwargs)

    def _scores(self, vectors: np.ndarray) -> np.ndarray:
        if self.method == "centroid":
            return vectors @ self._centroids.T
        sims = vectors @ self._examples.T
        out = np.empty((len(vectors), len(self.names)), dtype=np.float32)
        for j in range(len(self.names)):
            own = np.sort(sims[:, self._owner == j], axis=1)
            out[:, j] = own[:, -self.k:].mean(axis=1)
        return out

    def auto_threshold(self, quantile: float = 0.05) -> float:
        """A default abstain threshold from the examples alone.

        Each example is scored against its own intent with itself held out; the threshold is
        the ``quantile`` of those scores, so about 95% of held-out examples would still be
        matched. Intents with a single example take no part.
        """
        own = []
        for j in range(len(self.names)):
            vectors = self._examples[self._owner == j]
            if len(vectors) < 2:
                continue
            if self.method == "centroid":
                rest = self._sums[j] - vectors
                own.extend((vectors * rest).sum(axis=1) / np.maximum(np.linalg.norm(rest, axis=1), 1e-12))
            else:
                sims = vectors @ vectors.T
                np.fill_diagonal(sims, -np.inf)
                top = np.sort(sims, axis=1)[:, -min(self.k, len(vectors) - 1):]
                own.extend(top.mean(axis=1))
        return float(np.quantile(own, quantile)) if own else 0.0

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """Every intent's score for every text, ``(len(texts), len(names))``."""
        vectors = self.embedder.encode(list(texts), prompt=self.prompt, show_progress=len(texts) > 256)
        return self._scores(vectors)

    def match(self, texts: Sequence[str], top: int = 3) -> list[IntentMatch]:
        """The best intent for each text (or "unknown"), with the ``top`` intents and their scores."""
        if not texts:
            return []
        scores = self.scores(texts)
        order = np.argsort(-scores, axis=1)[:, :top]
        out = []
        for row, best in zip(scores, order):
            score = float(row[best[0]])
            intent = self.names[best[0]] if score >= self.threshold else UNKNOWN
            out.append(IntentMatch(intent, score, [(self.names[j], float(row[j])) for j in best]))
        return out


def load_intent_eval(path: PathLike, intents: Sequence[str], text: str = "text", label: str = "intent"):
    """Labelled texts (columns ``text,intent``) for evaluation.

    Raises:
        AnlamError: a missing column, an empty text, or an intent that is neither in ``intents``
            nor "unknown" (row named).
    """
    texts, labels = read_text_columns(path, [text, label])
    known = set(intents) | {UNKNOWN}
    for row, value in enumerate(labels, start=1):
        if value not in known:
            raise AnlamError(f"{path}: row {row}: intent {value!r} is not in the intents file (nor {UNKNOWN!r})")
    return texts, labels


def evaluate_intents(matcher: IntentMatcher, texts: Sequence[str], labels: Sequence[str]) -> dict:
    """Accuracy, macro-F1 and the confusion matrix of ``matcher`` on labelled texts.

    Macro-F1 averages over every intent seen in the labels or the predictions, "unknown" included.
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    if not texts:
        raise AnlamError("no labelled texts to evaluate")
    predicted = [m.intent for m in matcher.match(texts, top=1)]
    names = [n for n in [*matcher.names, UNKNOWN] if n in set(labels) | set(predicted)]
    return {
        "accuracy": round(float(accuracy_score(labels, predicted)), 4),
        "macro_f1": round(float(f1_score(labels, predicted, labels=names, average="macro", zero_division=0)), 4),
        "n": len(texts),
        "threshold": round(matcher.threshold, 4),
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
