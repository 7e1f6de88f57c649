"""Search benchmark: quality (choosing the hybrid fusion on dev, reporting it on test) and scale (100k passages).

    python benchmarks/search.py --skip-scale    # quality only: both built-in models, dev and test
    python benchmarks/search.py                 # quality and scale in one run
    python benchmarks/search.py --skip-scale --splits dev --models base --out runs/search-dev.json

Runs from nothing: the models are built on first use and every text is embedded once per model
into ``runs/cache/search/`` (close to an hour on 2 busy CPU cores the first time, under 10
minutes after that).

Quality: five kinds of query set per split, each searched through the real ``Index`` (one index
per corpus, built with the model): ML-TR bank questions -> definitions, and d2l-tr headings ->
their section's paragraphs, first sentences -> the rest of the paragraph, summary statements and
exercise questions -> their section's paragraphs. Both sides' 100 best candidates are computed
once per query set (as written, without Turkish letters, in capitals); every fusion setting of
``grid`` re-fuses them with ``anlam.search.hybrid.fuse``. Dev ranks the settings ("never below the
better single side on any dev set, then the best mean MRR@10"); each split is then reported with
the library's default fusion: dense, BM25 and hybrid MRR@10 per way of typing.

Scale: synthetic Turkish-like passages with random unit vectors (topics in a 64-d latent space
projected to 384-d plus noise: a stand-in for embeddings, served by a lookup "embedder" so the
real ``Index`` build and search code runs end to end without spending hours embedding). Reports
build time, p50/p95 latency per mode, recall@10 of the approximate (HNSW) index against exact
search, an efSearch sweep, and peak memory.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from anlam.data import Document  # noqa: E402
from anlam.io import atomic_path  # noqa: E402
from anlam.search import Index  # noqa: E402
from anlam.search.hybrid import Fusion, fuse  # noqa: E402
from anlam.search.lexical import query_words  # noqa: E402
from anlam.search.index import PROBE, dense_query  # noqa: E402
from anlam.text import ascii_fold, nfc, tr_upper  # noqa: E402

SYLLABLES = ("ka ki ku ke la le li lı ma me mi mu na ne ni nu ra re ri ru sa se si su ta te ti tu ya ye yo ba be bi "
             "da de di do ga ge gi go ha he hi ça çe çi şa şe şi ğa ğe öz ör öl üs ün ür ıs ın ır ol ar er an en").split()
SUFFIXES = ("", "", "", "lar", "ler", "ın", "in", "da", "de", "dan", "den", "ı", "i", "ları", "leri", "sı", "si", "ya", "ye")


class LookupEmbedder:
    """Serves precomputed vectors for known texts, so the real index code runs without a model.

    A query is found by its last word (``sorguN``), which the index's query normalisation
    (letter restoration, capitals) leaves as it is; unknown texts get a fixed random vector.
    """

    path = "synthetic-vectors"
    max_tokens = 512

    def __init__(self, table: dict[str, np.ndarray], dim: int) -> None:
        self.table = table
        self.dim = dim

    def prompt_text(self, name):
        return ""

    def encode(self, texts, prompt_name=None, batch_size=32, show_progress=False, **_):
        rng = np.random.default_rng(0)
        found = [self.table.get(t, self.table.get(t.rsplit(maxsplit=1)[-1])) for t in texts]
        return np.stack([_unit(rng.standard_normal(self.dim)) if v is None else v for v in found])


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def synthetic(n: int, dim: int, topics: int, seed: int = 0, latent: int = 64):
    """``n`` passages of 20-60 Turkish-like words and unit vectors, one topic each.

    Vectors live near a ``latent``-dimensional subspace (as sentence embeddings do), topics are
    loose clusters in it, and each passage has its own offset and a little full-rank noise.
    """
    rng = np.random.default_rng(seed)
    vocab = sorted({"".join(rng.choice(SYLLABLES, rng.integers(2, 5))) for _ in range(30_000)})
    topic_words = rng.integers(0, len(vocab), size=(topics, 40))
    topic = rng.integers(0, topics, size=n)
    projection = rng.standard_normal((latent, dim)).astype(np.float32)
    centres = rng.standard_normal((topics, latent)).astype(np.float32)
    points = centres[topic] + 0.7 * rng.standard_normal((n, latent)).astype(np.float32)
    vectors = _unit(_unit(points @ projection) + 0.3 * _unit(rng.standard_normal((n, dim))))
    texts = []
    for i in range(n):
        size = int(rng.integers(20, 60))
        own = rng.choice(topic_words[topic[i]], size // 2)
        rest = rng.integers(0, len(vocab), size - size // 2)
        words = [vocab[w] + SUFFIXES[rng.integers(len(SUFFIXES))] for w in np.concatenate([own, rest])]
        rng.shuffle(words)
        texts.append(f"{i} " + " ".join(words).capitalize() + ".")  # the number keeps texts unique
    return texts, vectors, topic, topic_words, vocab


def percentiles(times: list[float]) -> dict[str, float]:
    ms = np.asarray(times) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 3), "p95_ms": round(float(np.percentile(ms, 95)), 3)}


def timed(fn, items) -> tuple[list, list[float]]:
    out, times = [], []
    for item in items:
        start = time.perf_counter()
        out.append(fn(item))
        times.append(time.perf_counter() - start)
    return out, times


def peak_mb() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not inherited across exec)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def scale(n: int, dim: int, queries: int, ann_threshold: int, ef_search: int, workdir: Path) -> dict:
    import faiss

    start = time.perf_counter()
    texts, vectors, topic, topic_words, vocab = synthetic(n, dim, topics=max(10, n // 100))
    made = time.perf_counter() - start
    rng = np.random.default_rng(1)
    picks = rng.integers(0, n, size=queries)
    query_vectors = _unit(vectors[picks] + 0.5 * _unit(rng.standard_normal((queries, dim))))
    query_texts = [" ".join(vocab[w] for w in rng.choice(topic_words[topic[p]], 3)) + f" sorgu{j}" for j, p in enumerate(picks)]
    table = dict(zip(texts, vectors)) | {f"sorgu{j}": v for j, v in enumerate(query_vectors)}
    embedder = LookupEmbedder(table, dim)
    docs = [Document(id=f"d{i}", text=t, metadata={"konu": f"k{topic[i] % 20}"}) for i, t in enumerate(texts)]
    del table

    start = time.perf_counter()
    index = Index.build(docs, workdir / "scale", embedder, ann_threshold=ann_threshold, ef_search=ef_search)
    build_s = time.perf_counter() - start
    info = index.info()
    del docs

    exact = faiss.IndexFlatIP(dim)
    exact.add(vectors)
    truth = exact.search(query_vectors, 10)[1]
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)  # one query at a time, as the index itself searches them
    _, flat_times = timed(lambda q: exact.search(q[None], 10), query_vectors)

    index.search(query_texts[0], k=10, mode="dense")  # warm-up: loads nothing new, touches pages
    dense_hits, dense_times = timed(lambda q: index.search(q, k=10, mode="dense"), query_texts)
    recall = float(np.mean([len({h.passage for h in hits} & set(t.tolist())) / 10 for hits, t in zip(dense_hits, truth)]))
    index.search(query_texts[0], k=10, mode="bm25")  # warm-up: loads the BM25 index
    _, bm25_times = timed(lambda q: index.search(q, k=10, mode="bm25"), query_texts)
    _, hybrid_times = timed(lambda q: index.search(q, k=10, mode="hybrid"), query_texts)
    _, filtered_times = timed(lambda q: index.search(q, k=10, mode="dense", filter={"konu": ["k3"]}), query_texts[:100])

    sweep = {}
    if index.store.approximate:
        store_index = index.store.index
        hnsw = faiss.downcast_index(store_index.index).hnsw
        for ef in (16, 32, 64, 128, 256):
            hnsw.efSearch = ef
            found, times = timed(lambda q: store_index.search(q[None], 10)[1][0], query_vectors)
            sweep[ef] = {"recall@10": round(float(np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth)])), 4),
                         **percentiles(times)}
        hnsw.efSearch = ef_search
    faiss.omp_set_num_threads(threads)
    return {
        "passages": n, "dim": dim, "queries": queries, "synthesis_s": round(made, 1),
        "build_s": round(build_s, 1), "vector_index": info["vector_index"],
        "dense": {**percentiles(dense_times), "recall@10_vs_exact": round(recall, 4)},
        "dense_filtered": percentiles(filtered_times),
        "bm25": percentiles(bm25_times), "hybrid": percentiles(hybrid_times),
        "exact_flat_faiss_only": percentiles(flat_times),
        "ef_search_sweep_faiss_only": sweep,
        "index_mb_on_disk": round(sum(f.stat().st_size for f in (workdir / "scale").rglob("*") if f.is_file()) / 2**20, 1),
        "peak_rss_mb_this_process": peak_mb(),
        "peak_rss_mb_load_and_search": serving_peak_mb(workdir / "scale", dim),
    }


def serving_peak_mb(path: Path, dim: int) -> float:
    """Peak memory of a fresh process that opens the index and runs each kind of search once."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[3]); from search import LookupEmbedder, peak_mb; "
        "from anlam.search import Index; index = Index.load(sys.argv[1], LookupEmbedder({}, int(sys.argv[2]))); "
        "[index.search('kalar lemi', k=10, mode=m) for m in ('dense', 'bm25', 'hybrid')]; "
        "index.search('kalar lemi', k=10, filter={'konu': ['k3']}); "
        "print(peak_mb())"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path), str(dim), str(Path(__file__).parent)],
                         capture_output=True, text=True, check=True)
    return round(float(out.stdout.strip().splitlines()[-1]), 1)


# -- quality: choosing the fusion on dev sets of several kinds ---------------------------------

MODELS = ("base", "anlam-ml-tr-small")
TASKS = ("bank", "d2l-heading", "d2l-first-sentence", "d2l-summary", "d2l-exercise")
VARIANTS = {"as written": lambda q: q, "without Turkish letters": ascii_fold, "in capitals": tr_upper}
DEPTH = 100  # each side's candidates, computed once per query set; every fusion setting re-fuses within them
CACHE = Path(__file__).resolve().parents[1] / "runs" / "cache" / "search"
Retrieval = tuple[dict[str, str], dict[str, str], dict[str, set[str]]]


class CachedEmbedder:
    """An ``Embedder`` that keeps every (prompt, text) vector in one file per model, so reruns embed nothing.

    The file is named by the model folder and a fingerprint of its embedding of ``PROBE``: another
    model (or other weights in the same folder) gets another file.
    """

    def __init__(self, embedder, folder: Path = CACHE) -> None:
        self.embedder, self.path, self.dim, self.max_tokens = embedder, embedder.path, embedder.dim, embedder.max_tokens
        probe = embedder.encode([PROBE], prompt_name="query")[0]
        fingerprint = hashlib.sha1(np.round(probe, 4).astype(np.float32).tobytes()).hexdigest()[:12]
        self.file = folder / f"{Path(embedder.path).name}-{fingerprint}.npz"
        self.vectors: dict[str, np.ndarray] = {}
        if self.file.exists():
            with np.load(self.file, allow_pickle=False) as data:
                self.vectors = dict(zip(data["keys"].tolist(), data["vectors"]))

    def prompt_text(self, name):
        return self.embedder.prompt_text(name)

    def encode(self, texts, prompt_name="query", batch_size=32, show_progress=False, **_):
        keys = [f"{self.prompt_text(prompt_name)}\x00{nfc(t)}" for t in texts]
        missing = list(dict.fromkeys(i for i, key in enumerate(keys) if key not in self.vectors))
        if missing:
            new = self.embedder.encode([texts[i] for i in missing], prompt_name=prompt_name, batch_size=batch_size,
                                       show_progress=show_progress or len(missing) > 256)
            self.vectors.update(zip((keys[i] for i in missing), new))
            self.save()
        if not keys:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self.vectors[key] for key in keys])

    def save(self) -> None:
        self.file.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.file) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, keys=np.asarray(list(self.vectors)), vectors=np.stack(list(self.vectors.values())))


def section_questions(blocks, heading: str, item: str) -> Retrieval:
    """Summary statements or exercise questions of each d2l-tr section -> the section's own paragraphs.

    ``heading`` picks the blocks ("Özet": bullet statements, "Alıştırmalar": numbered exercises),
    ``item`` is the pattern that separates their items; an exercise is kept only if it asks ("?").
    The corpus is every paragraph of the split outside summaries and exercises, so a query never
    meets the text it was taken from.
    """
    import re

    paragraphs = blocks[blocks["kind"] == "paragraph"]
    body = paragraphs[~paragraphs["heading"].isin(("Özet", "Alıştırmalar"))]
    corpus = {f"p{i}": text for i, text in zip(body.index, body["tr"])}
    members = {section: {f"p{i}" for i in group.index} for section, group in body.groupby("section")}
    queries, qrels = {}, {}
    asking = paragraphs[paragraphs["heading"] == heading]
    for section, text in zip(asking["section"], asking["tr"]):
        if section not in members:
            continue
        for part in re.split(item, text):
            part = part.strip(" *")
            if len(part.split()) >= 6 and (heading != "Alıştırmalar" or "?" in part):
                queries[f"q{len(queries)}"] = part
                qrels[f"q{len(qrels)}"] = members[section]
    return queries, corpus, qrels


def tasks(split: str) -> dict[str, Retrieval]:
    """The retrieval tasks of ``split``: bank questions -> definitions and four kinds of d2l-tr task."""
    from anlam.data import mltr_retrieval
    from anlam.data.d2l import d2l_blocks, first_sentence_retrieval, heading_retrieval

    blocks = d2l_blocks(split)
    return {
        "bank": mltr_retrieval(split),
        "d2l-heading": heading_retrieval(blocks),
        "d2l-first-sentence": first_sentence_retrieval(blocks),
        "d2l-summary": section_questions(blocks, "Özet", r"(?:^|\s)\*\s"),
        "d2l-exercise": section_questions(blocks, "Alıştırmalar", r"(?:^|\s)\d+\.\s"),
    }


@dataclass
class Candidates:
    """Both sides' scores of one query set on its corpus, ``(queries, documents)``; NaN: not in the top ``DEPTH``."""

    dense: np.ndarray
    bm25: np.ndarray
    relevant: np.ndarray  # bool, (queries, documents)
    words: np.ndarray  # each query's word count (lexical.query_words), for the fusion's pivot

    def fused(self, fusion: Fusion) -> np.ndarray:
        return fuse(self.dense, self.bm25, fusion, self.words)


def candidates(index: Index, doc_ids: list[str], queries: list[str], relevant: list[set[str]]) -> Candidates:
    """Run the real ``Index`` once per side for ``queries`` and lay the candidates out as matrices."""
    column = {doc: j for j, doc in enumerate(doc_ids)}
    passages = index.store.get(list(range(index.manifest["passages"])))
    doc_of = {pid: column[p.doc_id] for pid, p in passages.items()}
    dense = np.full((len(queries), len(doc_ids)), np.nan, dtype=np.float64)
    bm25 = dense.copy()
    for side, matrix in zip(index.candidates(queries, DEPTH), (dense, bm25)):
        for row, pairs in enumerate(side):
            for pid, score in pairs:
                matrix[row, doc_of[pid]] = np.fmax(matrix[row, doc_of[pid]], score)
    rel = np.zeros_like(dense, dtype=bool)
    for row, docs in enumerate(relevant):
        rel[row, [column[d] for d in docs]] = True
    return Candidates(dense, bm25, rel, np.array([query_words(q) for q in queries]))


def mrr(scores: np.ndarray, relevant: np.ndarray, k: int = 10) -> float:
    """MRR@k of rankings by ``scores`` (NaN = not ranked; ties broken by document order)."""
    filled = np.where(np.isnan(scores), -np.inf, scores)
    top = np.argsort(-filled, axis=1, kind="stable")[:, :k]
    hit = np.take_along_axis(relevant, top, axis=1) & np.isfinite(np.take_along_axis(filled, top, axis=1))
    first = np.where(hit.any(axis=1), hit.argmax(axis=1) + 1, np.inf)
    return float(np.mean(1.0 / first))


def query_sets(model: str, split: str, workdir: Path) -> tuple[dict[str, dict[str, Candidates]], dict[str, float]]:
    """``{task: {variant: Candidates}}`` for one model and split (indexes built in ``workdir``), and
    per task the dense MRR@10 of the queries without Turkish letters when the index does not put them back."""
    from anlam.models import Embedder

    embedder = CachedEmbedder(Embedder.from_pretrained(model))
    out: dict[str, dict[str, Candidates]] = {}
    unrestored: dict[str, float] = {}
    for task, (queries, corpus, qrels) in tasks(split).items():
        doc_ids = list(corpus)
        index = Index.build([Document(id=d, text=corpus[d]) for d in doc_ids], workdir / f"{model}-{split}-{task}",
                            embedder, max_words=400)
        if index.manifest["passages"] != len(doc_ids):
            raise RuntimeError(f"{task}: a document was cut into passages; raise max_words")
        ids = [q for q in queries if q in qrels]
        out[task] = {variant: candidates(index, doc_ids, [change(queries[q]) for q in ids], [qrels[q] for q in ids])
                     for variant, change in VARIANTS.items()}
        vectors = embedder.encode([dense_query(ascii_fold(queries[q])) for q in ids], prompt_name="query")
        passages = embedder.encode([corpus[d] for d in doc_ids], prompt_name="passage")  # from the cache
        unrestored[task] = mrr(vectors @ passages.T, out[task]["as written"].relevant)
        index.close()
    return out, unrestored


PREVIOUS = Fusion("rrf", 3.0, 10, 50, None)  # the default before this benchmark: chosen on bank dev alone


def grid() -> list[Fusion]:
    """The fusion settings the dev sets choose from."""
    weights = (0.25, 0.33, 0.5, 0.67, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0)
    depths = (10, 20, 30, 50, 100)
    pivots = (None, 4)
    rrf = [Fusion("rrf", w, k, d, p) for k in (1, 3, 10, 30, 60) for w in weights for d in depths for p in pivots]
    return rrf + [Fusion(m, w, depth=d, pivot=p) for m in ("minmax", "zscore") for w in weights for d in depths
                  for p in pivots]


def label(fusion: Fusion) -> str:
    k = f" k={fusion.k:g}" if fusion.method == "rrf" else ""
    w = f"{fusion.dense_weight:g}" + (f"·{fusion.pivot}/words" if fusion.pivot else "")
    return f"{fusion.method}{k} w={w} depth={fusion.depth}"


def score_sets(sets: dict[str, Candidates], fusions: list[Fusion]) -> dict:
    """Dense, BM25 and each fusion's MRR@10 on every query set."""
    sides = {name: {"dense": mrr(c.dense, c.relevant), "bm25": mrr(c.bm25, c.relevant)} for name, c in sets.items()}
    fused = {label(f): {name: mrr(c.fused(f), c.relevant) for name, c in sets.items()} for f in fusions}
    return {"sides": sides, "fused": fused}


def choose(scores: dict, fusions: list[Fusion]) -> list[dict]:
    """Settings best first: never below the better single side on any set first, then by mean MRR@10.

    A setting that is below it somewhere ranks by its worst shortfall, then by mean.
    """
    best = {name: max(side.values()) for name, side in scores["sides"].items()}
    rows = []
    for fusion in fusions:
        got = scores["fused"][label(fusion)]
        margins = {name: got[name] - best[name] for name in best}
        rows.append({"fusion": fusion, "setting": label(fusion), "mean_mrr@10": float(np.mean(list(got.values()))),
                     "worst_margin": min(margins.values()), "mrr@10": got})
    return sorted(rows, key=lambda r: (min(r["worst_margin"], 0.0), r["mean_mrr@10"]), reverse=True)


def split_report(sets: dict[str, dict[str, Candidates]], unrestored: dict[str, float], fusion: Fusion) -> dict:
    """Per task: MRR@10 of dense, BM25 and hybrid for each way of typing, and the targets' checks."""
    out = {}
    for task, by_variant in sets.items():
        row = {variant: {"dense": mrr(c.dense, c.relevant), "bm25": mrr(c.bm25, c.relevant),
                         "hybrid": mrr(c.fused(fusion), c.relevant)} for variant, c in by_variant.items()}
        written = row["as written"]
        row["dense, letters not put back"] = {"dense": unrestored[task]}
        row["hybrid - max(dense, bm25)"] = written["hybrid"] - max(written["dense"], written["bm25"])
        for variant in ("without Turkish letters", "in capitals"):
            row[f"hybrid drop {variant}"] = written["hybrid"] - row[variant]["hybrid"]
        out[task] = _rounded(row)
    return out


def quality(models: list[str], splits: list[str], workdir: Path) -> dict:
    """Choose the fusion on dev (every model and task, queries as written); report each split with the library's."""
    data = {(model, split): query_sets(model, split, workdir) for split in splits for model in models}
    out: dict = {"queries": {split: {task: len(by_variant["as written"].dense)
                                     for task, by_variant in data[models[0], split][0].items()} for split in splits},
                 "library_default": label(Fusion()), "previous_default": label(PREVIOUS)}
    if "dev" in splits:
        dev = {f"{model}/{task}": by_variant["as written"]
               for model in models for task, by_variant in data[model, "dev"][0].items()}
        fusions = grid()
        ranked = choose(score_sets(dev, fusions), fusions)
        pick = {r["setting"]: r for r in ranked}
        out["dev_choice"] = {
            "sides": {name: _rounded({"dense": mrr(c.dense, c.relevant), "bm25": mrr(c.bm25, c.relevant)})
                      for name, c in dev.items()},
            "chosen": ranked[0]["setting"],
            "ranked": [_public(r) for r in ranked[:12]],
            "library_default": _public(pick[label(Fusion())]),
            "previous_default": _public(pick[label(PREVIOUS)]),
            "best_of_each_kind": [_public(next(r for r in ranked if (r["fusion"].method, r["fusion"].pivot) == (m, p)))
                                  for m in ("rrf", "minmax", "zscore") for p in (None, 4)],
        }
        if ranked[0]["fusion"] != Fusion():
            print(f"NOTE: dev chooses {ranked[0]['setting']}, the library default is {label(Fusion())}", flush=True)
    for split in splits:
        out[split] = {model: split_report(*data[model, split], Fusion()) for model in models}
    return out


def _public(row: dict) -> dict:
    return _rounded({k: v for k, v in row.items() if k != "fusion"})


def _rounded(value):
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return round(value, 4) if isinstance(value, float) else value


def markdown(quality: dict) -> str:
    """The tables of docs/search.md."""
    lines = []
    if "dev_choice" in quality:
        choice = quality["dev_choice"]
        names = list(choice["sides"])
        lines += ["| setting (dev, MRR@10) | mean | worst margin | " + " | ".join(names) + " |",
                  "|---|---|---|" + "---|" * len(names)]
        lines.append("| dense | | | " + " | ".join(f"{choice['sides'][n]['dense']:.3f}" for n in names) + " |")
        lines.append("| BM25 | | | " + " | ".join(f"{choice['sides'][n]['bm25']:.3f}" for n in names) + " |")
        rows = [("previous default", choice["previous_default"])] + [("", r) for r in choice["ranked"][:5]]
        rows += [("best of its kind", r) for r in choice["best_of_each_kind"]]
        for note, row in rows:
            lines.append(f"| {note + ': ' if note else ''}{row['setting']} | {row['mean_mrr@10']:.4f} | "
                         f"{row['worst_margin']:+.4f} | " + " | ".join(f"{row['mrr@10'][n]:.3f}" for n in names) + " |")
        lines.append("")
    for split in ("dev", "test"):
        if split not in quality:
            continue
        lines += [f"| {split}: model, task | dense | BM25 | hybrid | hybrid - best side "
                  "| dense / hybrid without Turkish letters | dense / hybrid in capitals "
                  "| dense, letters not put back |",
                  "|---|---|---|---|---|---|---|---|"]
        for model, by_task in quality[split].items():
            for task, row in by_task.items():
                w, a, c = row["as written"], row["without Turkish letters"], row["in capitals"]
                lines.append(f"| {model}, {task} | {w['dense']:.3f} | {w['bm25']:.3f} | **{w['hybrid']:.3f}** | "
                             f"{row['hybrid - max(dense, bm25)']:+.3f} | {a['dense']:.3f} / {a['hybrid']:.3f} | "
                             f"{c['dense']:.3f} / {c['hybrid']:.3f} | "
                             f"{row['dense, letters not put back']['dense']:.3f} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS), help="models for the quality part")
    parser.add_argument("--splits", nargs="+", default=["dev", "test"], choices=["dev", "test"],
                        help="dev chooses the fusion; test reports it")
    parser.add_argument("--passages", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--ann-threshold", type=int, default=None, help="default: the library's")
    parser.add_argument("--ef-search", type=int, default=None, help="default: the library's")
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()

    from anlam.search.store import DEFAULT_ANN_THRESHOLD, DEFAULT_EF_SEARCH

    results: dict = {"cpu_threads": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="anlam-bench-") as tmp:
        if not args.skip_quality:
            results["quality"] = quality(args.models, args.splits, Path(tmp))
            print(json.dumps({"quality": results["quality"]}, ensure_ascii=False, indent=2), flush=True)
            print(markdown(results["quality"]), flush=True)
        if not args.skip_scale:
            results["scale"] = scale(args.passages, args.dim, args.queries, args.ann_threshold or DEFAULT_ANN_THRESHOLD,
                                     args.ef_search or DEFAULT_EF_SEARCH, Path(tmp))
            print(json.dumps({"scale": results["scale"]}, ensure_ascii=False, indent=2), flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
