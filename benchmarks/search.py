"""Search benchmark: scale (100k passages) and quality (ML-TR retrieval), in one run.

Scale: synthetic Turkish-like passages with random unit vectors (topics in a 64-d latent space
projected to 384-d plus noise: a stand-in for embeddings, served by a lookup "embedder" so the
real ``Index`` build and search code runs end to end without spending hours embedding). Reports
build time, p50/p95 latency per mode, recall@10 of the approximate (HNSW) index against exact
search, an efSearch sweep, and peak memory.

Quality: ML-TR retrieval test (user questions -> concept definitions) with a real model:
MRR@10 and recall@10 of dense, BM25 and hybrid, for the original queries, the same queries
typed without Turkish letters (ASCII-folded) and typed in capitals.

    python benchmarks/search.py                       # both parts, the embedded base model
    python benchmarks/search.py --model runs/tuned    # the quality part with a tuned model
    python benchmarks/search.py --skip-scale --split dev
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from anlam.search import Document, Index  # noqa: E402
from anlam.search.index import dense_query  # noqa: E402
from anlam.text import ascii_fold, tr_upper  # noqa: E402

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

    def encode(self, texts, prompt=None, batch_size=32, show_progress=False, **_):
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


def mrr_recall(results: list[list[str]], relevant: list[set[str]], k: int = 10) -> dict[str, float]:
    mrr, recall = [], []
    for ranked, rel in zip(results, relevant):
        ranked = ranked[:k]
        mrr.append(next((1 / r for r, doc in enumerate(ranked, start=1) if doc in rel), 0.0))
        recall.append(len(set(ranked) & rel) / len(rel))
    return {"mrr@10": round(float(np.mean(mrr)), 4), "recall@10": round(float(np.mean(recall)), 4)}


def quality(model: str | None, split: str, workdir: Path) -> dict:
    from anlam.data import mltr_retrieval
    from anlam.models import Embedder

    queries, corpus, qrels = mltr_retrieval(split)
    embedder = Embedder.from_pretrained(model)
    start = time.perf_counter()
    index = Index.build([Document(id=i, text=t) for i, t in corpus.items()], workdir / "mltr", embedder)
    build_s = time.perf_counter() - start
    ids = list(queries)
    relevant = [qrels[i] for i in ids]
    variants = {
        "original": [queries[i] for i in ids],
        "ascii_folded": [ascii_fold(queries[i]) for i in ids],
        "capitals": [tr_upper(queries[i]) for i in ids],
    }
    out: dict = {"model": str(embedder.path), "split": split, "queries": len(ids), "corpus": len(corpus),
                 "build_s": round(build_s, 1)}
    for variant, texts in variants.items():
        out[variant] = {}
        for mode in ("dense", "bm25", "hybrid"):
            hits = index.search_many(texts, k=10, mode=mode)
            out[variant][mode] = mrr_recall([[h.id for h in hs] for hs in hits], relevant)
    # Ablation: folded queries embedded without putting Turkish letters back (the dense side alone).
    vectors = embedder.encode([dense_query(t) for t in variants["ascii_folded"]], prompt="query")
    found = index.store.search(vectors, 10)
    passages = index.store.get(sorted({pid for row in found for pid, _ in row}))
    out["ascii_folded"]["dense_without_letter_restoration"] = mrr_recall(
        [[passages[pid].doc_id for pid, _ in row] for row in found], relevant)
    o, f = out["original"], out["ascii_folded"]
    out["checks"] = {
        "hybrid_mrr >= max(dense, bm25)": o["hybrid"]["mrr@10"] >= max(o["dense"]["mrr@10"], o["bm25"]["mrr@10"]),
        "ascii_folded hybrid mrr loss": round(o["hybrid"]["mrr@10"] - f["hybrid"]["mrr@10"], 4),
        "ascii_folded loss <= 0.03": o["hybrid"]["mrr@10"] - f["hybrid"]["mrr@10"] <= 0.03,
    }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model folder for the ML-TR part (default: the embedded base)")
    parser.add_argument("--split", default="test", help="ML-TR split for the quality part")
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
            results["mltr"] = quality(args.model, args.split, Path(tmp))
            print(json.dumps({"mltr": results["mltr"]}, ensure_ascii=False, indent=2), flush=True)
        if not args.skip_scale:
            results["scale"] = scale(args.passages, args.dim, args.queries, args.ann_threshold or DEFAULT_ANN_THRESHOLD,
                                     args.ef_search or DEFAULT_EF_SEARCH, Path(tmp))
            print(json.dumps({"scale": results["scale"]}, ensure_ascii=False, indent=2), flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
