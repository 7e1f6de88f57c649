"""Clustering sentences: agglomerative (average or Ward linkage), k-means or HDBSCAN on
centred embeddings.

The default is what measured best on the dev splits (benchmarks/apps.py, docs/apps.md): the
corpus's mean vector is subtracted and each vector renormalised (e5's vectors share one large
direction, so raw cosines crowd into 0.7-0.9 and say little), then agglomerative clustering with
average linkage on cosine distance, k given or chosen by silhouette. ``dims`` optionally keeps
only the first principal components.

Each cluster is described by its representative sentence (the one closest to the centroid) and
its top keywords by class-based TF-IDF (a cluster's term frequency times the log of how rare the
term is across clusters, as in BERTopic) over Turkish-stemmed tokens, shown in their most common
surface form. ``plot_clusters`` draws the 2-D PCA map.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from anlam.errors import AnlamError
from anlam.io import atomic_path
from anlam.models import EmbedderLike
from anlam.text import ascii_fold, tokens

logger = logging.getLogger(__name__)

PathLike = Path | str
METHODS = ("average", "ward", "kmeans", "hdbscan")
NOISE = -1

# Function words, question particles, frequent adverbs and light verbs: they say nothing about
# a cluster's topic.
STOPWORDS = frozenset("""
acaba ama ancak arasında arasındaki aslında ayrı ayrıca az bazı belki ben bile bir biraz biri birkaç
birbirine biz bu buna bunda bundan bunlar bunu bunun çok çoğu çünkü da daha de değil diğer diye
eder eden edilir eğer en etmek fazla gerekir gibi göre hem hep her hiç için ile ise iyi kadar ki
mi mı mu mü mıyım miyim musun müsün mısın misin nasıl ne neden nedir niçin o olabilir olan olarak
olduğu olduğunu olması olur onlar onu oysa önce öyle sadece sağlar sonra siz sıkça şey şu
tarafından tüm üzerinde ve veya ya yani yapılır yerine yine yoksa zaman zaten genellikle
a an and are for in is it of on or the to with
""".split())


@dataclass(frozen=True)
class Cluster:
    """One cluster: its ``id``, ``size``, representative sentence and top keywords."""

    id: int
    size: int
    representative: str
    representative_index: int
    keywords: list[str]

    def to_dict(self) -> dict:
        return {"cluster": self.id, "size": self.size, "representative": self.representative,
                "representative_index": self.representative_index, "keywords": self.keywords}


@dataclass
class ClusterResult:
    """Cluster ids per text (``-1`` = noise, HDBSCAN only), and the clusters largest first."""

    texts: list[str]
    labels: list[int]
    clusters: list[Cluster]
    method: str
    silhouette: float | None
    embeddings: np.ndarray = field(repr=False)

    @property
    def k(self) -> int:
        return len(self.clusters)

    def to_dict(self) -> dict:
        return {"method": self.method, "k": self.k, "silhouette": self.silhouette,
                "noise": self.labels.count(NOISE), "clusters": [c.to_dict() for c in self.clusters],
                "assignments": [{"cluster": c, "text": t} for c, t in zip(self.labels, self.texts)]}


def cluster_texts(texts: Sequence[str], embedder: EmbedderLike, k: int | None = None, method: str = "average",
                  max_k: int = 12, min_cluster_size: int = 3, n_keywords: int = 5, seed: int = 42,
                  centre: bool = True, dims: int = 0, prompt: str = "query", batch_size: int = 32) -> ClusterResult:
    """Embed ``texts`` and cluster them; see ``cluster_embeddings``."""
    _check(len(texts), k, method, centre, dims)  # before the costly embedding
    vectors = embedder.encode(list(texts), prompt_name=prompt, batch_size=batch_size, show_progress=len(texts) > 256)
    return cluster_embeddings(texts, vectors, k=k, method=method, max_k=max_k, min_cluster_size=min_cluster_size,
                              n_keywords=n_keywords, seed=seed, centre=centre, dims=dims)


def cluster_embeddings(texts: Sequence[str], vectors: np.ndarray, k: int | None = None, method: str = "average",
                       max_k: int = 12, min_cluster_size: int = 3, n_keywords: int = 5, seed: int = 42,
                       centre: bool = True, dims: int = 0) -> ClusterResult:
    """Cluster unit-norm ``vectors`` of ``texts``.

    Args:
        k: number of clusters (all methods but HDBSCAN); ``None`` picks the k in 2..``max_k``
            with the best silhouette (cosine, on the vectors clustered).
        method: "average" (agglomerative, average linkage on cosine distance), "ward"
            (agglomerative, Ward linkage), "kmeans", or "hdbscan" (density based, finds k
            itself, marks outliers ``-1``).
        min_cluster_size: HDBSCAN's smallest cluster.
        n_keywords: keywords per cluster.
        centre, dims: how the vectors are prepared, see ``prepare_vectors``. Representatives
            and the map use the original vectors.

    Raises:
        AnlamError: empty corpus, k out of range, unknown method, bad dims, or too few texts
            for choosing k.
    """
    texts = list(texts)
    n = len(texts)
    _check(n, k, method, centre, dims)
    space = prepare_vectors(vectors, centre, dims)
    if method == "hdbscan":
        labels = _hdbscan(space, min_cluster_size)
    elif k is not None:
        labels = _partitions(space, method, [k], seed)[0]
    else:
        candidates = list(range(2, min(max_k, n - 1) + 1))
        runs = _partitions(space, method, candidates, seed)
        scores = [_silhouette(space, labels) for labels in runs]
        labels = runs[int(np.nanargmax(scores))]
        logger.info("silhouette by k: %s", dict(zip(candidates, np.round(scores, 3))))
    labels = _by_size(labels)
    clustered = labels != NOISE
    silhouette = _silhouette(space[clustered], labels[clustered]) if clustered.any() else None
    keywords = cluster_keywords(texts, labels, n_keywords)
    clusters = []
    for c in range(labels.max() + 1):
        members = np.flatnonzero(labels == c)
        centroid = vectors[members].mean(axis=0)
        best = int(members[np.argmax(vectors[members] @ centroid)])
        clusters.append(Cluster(c, len(members), texts[best], best, keywords.get(c, [])))
    return ClusterResult(texts, labels.tolist(), clusters, method,
                         None if silhouette is None or np.isnan(silhouette) else round(float(silhouette), 4), vectors)


def _check(n: int, k: int | None, method: str, centre: bool = True, dims: int = 0) -> None:
    if n == 0:
        raise AnlamError("no texts to cluster (empty corpus)")
    if method not in METHODS:
        raise AnlamError(f"unknown clustering method {method!r}; use one of {', '.join(METHODS)}")
    if dims < 0:
        raise AnlamError(f"dims must be 0 (every dimension) or more, got {dims}")
    if dims and not centre:
        raise AnlamError("dims keeps principal components, which are centred; it cannot go with no centring")
    if method == "hdbscan":
        return
    if k is not None and k < 1:
        raise AnlamError(f"k must be at least 1, got {k}")
    if k is not None and k > n:
        raise AnlamError(f"k={k} is larger than the corpus ({n} texts)")
    if k is None and n < 3:
        raise AnlamError(f"choosing k by silhouette needs at least 3 texts, got {n}; give -k")


def prepare_vectors(vectors: np.ndarray, centre: bool = True, dims: int = 0) -> np.ndarray:
    """The vectors as they are clustered: centred on the corpus mean and renormalised.

    Centring removes the direction every e5 vector shares, so cosines measure how texts differ
    within the corpus. ``dims`` > 0 keeps only that many principal components (a corpus of n
    texts spans at most n - 1). ``centre=False`` returns ``vectors`` unchanged.
    """
    if not centre:
        return vectors
    centred = vectors - vectors.mean(axis=0)
    if 0 < dims < min(len(vectors) - 1, vectors.shape[1]):
        from sklearn.decomposition import PCA

        centred = PCA(n_components=dims, random_state=0).fit_transform(vectors)
    return (centred / np.maximum(np.linalg.norm(centred, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def _partitions(vectors: np.ndarray, method: str, ks: Sequence[int], seed: int) -> list[np.ndarray]:
    """One labelling per k: agglomerative methods cut one tree at every k, k-means runs once per k."""
    if method in ("average", "ward"):
        from scipy.cluster.hierarchy import cut_tree, linkage
        from scipy.spatial.distance import squareform

        if len(vectors) < 2:
            return [np.zeros(len(vectors), dtype=int) for _ in ks]
        if method == "average":  # cosine distance of unit rows; a zero row (a text at the mean) is 1 from all
            distances = np.clip(1.0 - vectors.astype(np.float64) @ vectors.T.astype(np.float64), 0.0, 2.0)
            tree = linkage(squareform(distances, checks=False), method="average")
        else:
            tree = linkage(vectors, method="ward")
        cuts = cut_tree(tree, n_clusters=list(ks))
        return [cuts[:, i] for i in range(len(ks))]
    from sklearn.cluster import KMeans

    return [KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(vectors) for k in ks]


def _hdbscan(vectors: np.ndarray, min_cluster_size: int) -> np.ndarray:
    from sklearn.cluster import HDBSCAN

    if min_cluster_size < 2:
        raise AnlamError(f"--min-size must be at least 2, got {min_cluster_size}")
    if len(vectors) < 2:
        return np.full(len(vectors), NOISE)
    # Euclidean distance on unit vectors orders pairs exactly as cosine does.
    return HDBSCAN(min_cluster_size=min_cluster_size, copy=True).fit_predict(vectors)


def _silhouette(vectors: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.metrics import silhouette_score

    if not 2 <= len(set(labels.tolist())) <= len(labels) - 1:
        return float("nan")
    return float(silhouette_score(vectors, labels, metric="cosine"))


def _by_size(labels: np.ndarray) -> np.ndarray:
    """Renumber clusters 0, 1, ... from the largest down (ties: first seen first); noise stays -1."""
    labels = np.asarray(labels)
    ids = [c for c in dict.fromkeys(labels.tolist()) if c != NOISE]
    counts = Counter(labels.tolist())
    order = sorted(ids, key=lambda c: -counts[c])
    mapping = {old: new for new, old in enumerate(order)} | {NOISE: NOISE}
    return np.array([mapping[c] for c in labels.tolist()], dtype=int)


def cluster_keywords(texts: Sequence[str], labels: Sequence[int] | np.ndarray, n: int = 5) -> dict[int, list[str]]:
    """Top ``n`` keywords per cluster by class-based TF-IDF over Turkish-stemmed tokens.

    ``score(t, c) = tf(t, c) / |c| * log(1 + A / f(t))`` with ``A`` the mean number of tokens per
    cluster and ``f(t)`` the frequency of ``t`` over all clusters. Noise (``-1``) is left out.
    """
    import Stemmer
    from sklearn.feature_extraction.text import CountVectorizer

    stemmer = Stemmer.Stemmer("turkish")
    surface: dict[str, Counter] = defaultdict(Counter)

    def analyse(text: str) -> list[str]:
        words = [w for w in tokens(text) if len(w) > 1 and not w.isdigit() and w not in STOPWORDS]
        # Fold after stemming so "öğrenme" and "ogrenme" (typed without Turkish letters) meet.
        stems = [ascii_fold(stem) for stem in stemmer.stemWords(words)]
        for word, stem in zip(words, stems):
            surface[stem][word] += 1
        return stems

    label_array = np.asarray(labels)
    ids = sorted(set(label_array.tolist()) - {NOISE})
    if not ids:
        return {}
    keep = label_array != NOISE
    try:
        counts = CountVectorizer(analyzer=analyse).fit(texts)
    except ValueError:  # no token survives (only stop words or numbers)
        return {c: [] for c in ids}
    vocab = counts.get_feature_names_out()
    matrix = counts.transform([t for t, k in zip(texts, keep) if k])
    owner = label_array[keep]
    per_class = np.vstack([np.asarray(matrix[owner == c].sum(axis=0)).ravel() for c in ids]).astype(float)
    tf = per_class / np.maximum(per_class.sum(axis=1, keepdims=True), 1)
    idf = np.log1p(per_class.sum(axis=1).mean() / np.maximum(per_class.sum(axis=0), 1))
    scores = tf * idf
    out = {}
    for row, c in enumerate(ids):
        best = [j for j in np.argsort(-scores[row], kind="stable")[:n] if scores[row, j] > 0]
        out[c] = [_display(surface[vocab[j]]) for j in best]
    return out


def _display(forms: Counter) -> str:
    """The most common surface form of a stem; on a tie, the one written with Turkish letters."""
    return max(forms.items(), key=lambda item: (item[1], item[0] != ascii_fold(item[0])))[0]


def plot_clusters(result: ClusterResult, path: PathLike, title: str = "") -> Path:
    """Write a 2-D PCA map of the texts, coloured by cluster (noise grey), as a PNG."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure
    from sklearn.decomposition import PCA

    vectors = result.embeddings
    points = PCA(n_components=2).fit_transform(vectors) if len(vectors) >= 2 else np.zeros((len(vectors), 2))
    labels = np.asarray(result.labels)
    palette = colormaps["tab20" if result.k > 10 else "tab10"]
    fig = Figure(figsize=(9, 6.5), layout="constrained")
    ax = fig.subplots()
    if (labels == NOISE).any():
        noise = labels == NOISE
        ax.scatter(points[noise, 0], points[noise, 1], s=14, c="lightgrey", label="gürültü")
    for cluster in result.clusters:
        member = labels == cluster.id
        color = palette(cluster.id % palette.N)
        name = ", ".join(cluster.keywords[:3]) or "-"
        ax.scatter(points[member, 0], points[member, 1], s=22, color=color, label=f"{cluster.id}: {name}")
        cx, cy = points[member].mean(axis=0)
        ax.annotate(str(cluster.id), (cx, cy), fontsize=11, weight="bold", ha="center", va="center",
                    bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": color, "alpha": 0.85})
    ax.set_title(title or f"{len(labels)} metin, {result.k} küme ({result.method})")
    ax.set_xlabel("PCA 1")
    ax.set_ylabel("PCA 2")
    ax.legend(fontsize=8, loc="best", frameon=True)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return path
