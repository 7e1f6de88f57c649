"""The apps measured for the base and the shipped model, on dev and test, in one command:

    .venv/bin/python benchmarks/apps.py                      # base and anlam-ml-tr-small, dev and test
    .venv/bin/python benchmarks/apps.py runs/my-model --splits dev --only intents --out runs/apps.json
    .venv/bin/python benchmarks/apps.py --tables runs/apps/*.json   # the tables of earlier --out files

The whole run takes about 20 minutes on 2 busy CPU cores; `--only` and one model per call split
it (docs/apps.md lists the calls behind its tables). Embeddings are cached under runs/cache/apps/ (per model file, prompt and text), so a rerun only
scores. Dev is for choosing (the defaults of `anlam intent` and `anlam cluster` were chosen on it),
test for reporting once. For each model:

- intents (`anlam intent`): in-scope accuracy (an "unknown" answer counts as wrong) and the share
  of out-of-scope texts answered "unknown", for each abstain rule: none, the 5 % quantile of the
  examples' held-out scores (the rule before issue 17), the out-of-scope reference alone
  ("reference 95 %", `auto` until 2026-12-05) and `auto` (the reference, lowered where it would
  turn away more than 5 % of the held-out examples; the default), with nearest centroid and k-NN.
  Sets: the bundled ML FAQ, helpdesk and telecom samples (fixed; they have no dev/test split; the
  telecom sample was written after `auto` took its present form and measured once), and intents
  built from the split's d2l-tr sections
  (every other paragraph of a section, or its headings, as the examples; the first sentences of
  the section's other paragraphs as the questions). Out of scope: 300 general Turkish sentences of
  the split (STSb-TR and the split's half of TQP dev; none in the shipped reference), and the
  samples' own "unknown" rows;
- clustering (`anlam cluster`): V-measure against the bank's subfields (ML-TR clustering set) and
  the d2l-tr chapters and sections, for k-means / spherical k-means / Ward / average linkage /
  HDBSCAN, on the raw vectors, centred, or reduced by PCA, with k given (the number of labels) and
  chosen by silhouette; and (`subsets`) the mean and sd of V-measure over 8 random 80 % subsets,
  on which the default was chosen;
- paraphrase (test only: the calibration is fitted on dev): F1 of the calibrated decision and ROC
  AUC of the cosine on ML-TR test paraphrase vs near-miss pairs.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import numpy as np
from sklearn.metrics import f1_score, roc_auc_score, v_measure_score

from anlam.apps import (
    IntentMatcher,
    ParaphraseDetector,
    cluster_embeddings,
    load_intent_eval,
    load_intents,
    mltr_calibration_pairs,
)
from anlam.apps.intent import out_of_scope_texts
from anlam.data import mltr_clustering, stsb_tr, tqp
from anlam.data.d2l import d2l_blocks, paragraph_clusters, split_first_sentence
from anlam.models import Embedder

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "runs" / "cache" / "apps"
SAMPLES = Path(str(files("anlam.samples")))
DEFAULT_MODELS = ("base", "anlam-ml-tr-small")
PARTS = ("intents", "clusters", "subsets", "paraphrase")


class CachedEmbedder(Embedder):
    """An ``Embedder`` whose plain ``encode`` calls read and fill a per-text cache on disk."""

    def __init__(self, embedder: Embedder) -> None:
        super().__init__(embedder.model, embedder.path)
        weights = Path(embedder.path) / "model.safetensors"
        stamp = f"{weights.stat().st_size}:{weights.stat().st_mtime_ns}" if weights.is_file() else ""
        key = hashlib.sha1(f"{Path(embedder.path).resolve()}:{stamp}".encode()).hexdigest()[:10]
        self.folder = CACHE / f"{Path(embedder.path).name}-{key}"
        self.vectors: dict[str, dict[str, np.ndarray]] = {}

    def _store(self, prompt: str) -> dict[str, np.ndarray]:
        if prompt not in self.vectors:
            path = self.folder / f"{prompt}.npz"
            self.vectors[prompt] = {}
            if path.exists():
                with np.load(path, allow_pickle=False) as saved:
                    self.vectors[prompt] = dict(zip(saved["texts"].tolist(), saved["vectors"]))
        return self.vectors[prompt]

    def encode(self, texts, prompt_name="query", *, truncate_dim=None, batch_size=32, long="truncate",
               show_progress=False, **other):
        if truncate_dim is not None or long != "truncate" or other or not texts:
            return super().encode(texts, prompt_name, truncate_dim=truncate_dim, batch_size=batch_size, long=long,
                                  show_progress=show_progress, **other)
        store = self._store(str(prompt_name))
        missing = list(dict.fromkeys(t for t in texts if t not in store))
        if missing:
            store.update(zip(missing, super().encode(missing, prompt_name, batch_size=batch_size,
                                                     show_progress=len(missing) > 256)))
            self.folder.mkdir(parents=True, exist_ok=True)
            path = self.folder / f"{prompt_name}.npz"
            tmp = path.with_name(f".{path.name}.{os.getpid()}.npz")
            np.savez(tmp, texts=np.array(list(store)), vectors=np.stack(list(store.values())))
            os.replace(tmp, path)
        return np.stack([store[t] for t in texts]).astype(np.float32)


def _by_hash(texts, n: int) -> list[str]:
    """The first ``n`` texts by SHA-1: a fixed draw that no library version changes."""
    return sorted(texts, key=lambda t: hashlib.sha1(t.encode("utf-8")).hexdigest())[:n]


def draw_out_of_scope(per_source: int = 150) -> list[str]:
    """The shipped reference (anlam/samples/out_of_scope_tr.txt): STSb-TR and TQP *train* sentences."""
    held = {t.strip() for split in ("dev", "test") for frame in (stsb_tr(split),)
            for t in [*frame["sentence_0"], *frame["sentence_1"]]}
    held |= {t.strip() for t in [*tqp("dev")["sentence_0"], *tqp("dev")["sentence_1"]]}
    out = []
    for frame in (stsb_tr("train"), tqp("train")):
        texts = dict.fromkeys(t.strip() for t in frame["sentence_0"])
        out += _by_hash([t for t in texts if len(t.split()) >= 2 and t not in held], per_source)
    return out


def general_out_of_scope(split: str, per_source: int = 150) -> list[str]:
    """General Turkish of a split for measuring rejection: STSb-TR, and anlam's half of TQP dev."""
    from anlam.evaluate import tqp_retrieval  # TQP dev halved by paraphrase set, as `anlam eval` does

    reference = set(out_of_scope_texts())
    queries, corpus, _ = tqp_retrieval(split)
    out = []
    for texts in (stsb_tr(split)["sentence_0"], [*queries.values(), *corpus.values()]):
        unique = dict.fromkeys(t.strip() for t in texts)
        out += _by_hash([t for t in unique if len(t.split()) >= 2 and t not in reference], per_source)
    return out


# ---------------------------------------------------------------- intents


@dataclass
class IntentSet:
    name: str
    intents: dict[str, list[str]]
    texts: list[str]
    labels: list[str]  # an intent, or "unknown"


def sample_sets() -> list[IntentSet]:
    out = []
    for name, intents_file, eval_file in (("ML FAQ sample", "ml_faq_intents.yaml", "ml_faq_eval.csv"),
                                          ("helpdesk sample", "helpdesk_intents.yaml", "helpdesk_eval.csv"),
                                          ("telecom sample", "telecom_intents.yaml", "telecom_eval.csv")):
        intents = load_intents(SAMPLES / intents_file)
        out.append(IntentSet(name, intents, *load_intent_eval(SAMPLES / eval_file, list(intents))))
    return out


def d2l_intents(split: str, examples: str, max_examples: int = 8) -> IntentSet:
    """One intent per d2l-tr section of the split (4 paragraphs or more).

    Examples: every other paragraph ("passages") or the section's own headings ("headings"), at
    most ``max_examples``; questions: the first sentences of the other paragraphs.
    """
    blocks = d2l_blocks(split)
    intents, texts, labels = {}, [], []
    for (chapter, section), group in blocks.groupby(["chapter", "section"], sort=True):
        paragraphs = group[group["kind"] == "paragraph"]["tr"].tolist()
        headings = list(dict.fromkeys(group[(group["kind"] == "heading") & ~group["generic"]]["tr"]))
        questions = [pair[0] for pair in map(split_first_sentence, paragraphs[1::2]) if pair]
        chosen = (paragraphs[0::2] if examples == "passages" else headings)[:max_examples]
        if len(paragraphs) < 4 or not questions or not chosen:
            continue
        name = f"{chapter.removeprefix('chapter_')}/{section}"
        intents[name] = chosen
        texts += questions
        labels += [name] * len(questions)
    return IntentSet(f"d2l-tr {split}, {examples} as examples", intents, texts, labels)


def examples_quantile(matcher: IntentMatcher, quantile: float = 0.05) -> float:
    """The abstain threshold before issue 17: the 5 % quantile of each example's score against
    its own intent with itself held out (a measure of how alike the examples are)."""
    own = []
    for j in range(len(matcher.names)):
        vectors = matcher._examples[matcher._owner == j]
        if len(vectors) < 2:
            continue
        if matcher.method == "centroid":
            rest = vectors.sum(axis=0) - vectors
            own.extend((vectors * rest).sum(axis=1) / np.maximum(np.linalg.norm(rest, axis=1), 1e-12))
        else:
            sims = vectors @ vectors.T
            np.fill_diagonal(sims, -np.inf)
            own.extend(np.sort(sims, axis=1)[:, -min(matcher.k, len(vectors) - 1):].mean(axis=1))
    return float(np.quantile(own, quantile))


def measure_intents(embedder: Embedder, split: str) -> list[dict]:
    general = general_out_of_scope(split)
    rows = []
    sets = [*sample_sets(), d2l_intents(split, "passages"), d2l_intents(split, "headings")]
    for iset in sets:
        inside = [(t, label) for t, label in zip(iset.texts, iset.labels) if label != "unknown"]
        own = [t for t, label in zip(iset.texts, iset.labels) if label == "unknown"]
        for method in ("centroid", "knn"):
            auto = IntentMatcher(embedder, iset.intents, method=method)
            reference_only = copy.copy(auto)  # "auto" before the held-out examples could lower it
            reference_only.threshold = auto._reference_threshold()
            rules = {"none": None, "examples 5 %": examples_quantile(auto), "reference 95 %": reference_only,
                     "auto": auto}
            for rule, threshold in rules.items():
                matcher = threshold if isinstance(threshold, IntentMatcher) else IntentMatcher(
                    embedder, iset.intents, method=method, threshold=threshold)
                answers = [m.intent for m in matcher.match([t for t, _ in inside], top=1)]
                row = {"split": split, "set": iset.name, "intents": len(iset.intents), "questions": len(inside),
                       "method": method, "rule": rule,
                       "in_scope_accuracy": round(float(np.mean([a == g for a, (_, g) in zip(answers, inside)])), 4),
                       "out_of_scope_rejected": round(float(np.mean([m.intent == "unknown" for m in matcher.match(general, top=1)])), 4)}
                if own:
                    row["own_unknown_rejected"] = f"{sum(m.intent == 'unknown' for m in matcher.match(own, top=1))}/{len(own)}"
                rows.append(row)
    return rows


# ---------------------------------------------------------------- clustering


def _spherical_kmeans(vectors: np.ndarray, k: int, seed: int = 42, n_init: int = 10) -> np.ndarray:
    """k-means with cosine assignments and unit centroids (not in scikit-learn; for comparison)."""
    from sklearn.cluster import kmeans_plusplus

    rng = np.random.RandomState(seed)
    best, best_labels = -np.inf, None
    for _ in range(n_init):
        centres, _ = kmeans_plusplus(vectors, k, random_state=rng)
        for _ in range(100):
            centres /= np.maximum(np.linalg.norm(centres, axis=1, keepdims=True), 1e-12)
            labels = (vectors @ centres.T).argmax(axis=1)
            moved = np.stack([vectors[labels == j].sum(axis=0) if (labels == j).any() else centres[j] for j in range(k)])
            if np.allclose(moved / np.maximum(np.linalg.norm(moved, axis=1, keepdims=True), 1e-12), centres):
                break
            centres = moved
        objective = (vectors @ centres.T).max(axis=1).sum()
        if objective > best:
            best, best_labels = objective, labels
    return best_labels


def _library(method: str, centre: bool = True, dims: int = 0, **kwargs) -> Callable:
    """`anlam cluster` itself (anlam.apps.cluster_embeddings) with these settings."""
    def run(texts, vectors, k):
        return cluster_embeddings(texts, vectors, k=k, method=method, centre=centre, dims=dims, n_keywords=1,
                                  **kwargs).labels
    return run


def _spherical(texts, vectors, k):
    """Spherical k-means on the raw vectors: k given, or chosen by silhouette in 2..12 like the others."""
    if k is not None:
        return _spherical_kmeans(vectors, k)
    from sklearn.metrics import silhouette_score

    runs = [_spherical_kmeans(vectors, c) for c in range(2, 13)]
    return max(runs, key=lambda labels: silhouette_score(vectors, labels, metric="cosine"))


DEFAULT_PIPELINE = "average linkage (cosine), centred (default)"
# name -> clusterer(texts, vectors, k or None) -> labels; the first is the default before issue 17
PIPELINES: dict[str, Callable] = {
    "k-means, raw vectors (before)": _library("kmeans", centre=False),
    "spherical k-means, raw vectors": _spherical,
    "k-means, PCA 64": _library("kmeans", dims=64),
    "average linkage (cosine), raw vectors": _library("average", centre=False),
    DEFAULT_PIPELINE: _library("average"),
    "average linkage (cosine), PCA 64": _library("average", dims=64),
    "Ward, raw vectors": _library("ward", centre=False),
    "Ward, centred": _library("ward"),
    "Ward, PCA 32": _library("ward", dims=32),
    "Ward, PCA 64": _library("ward", dims=64),
    "Ward, PCA 128": _library("ward", dims=128),
    "HDBSCAN, PCA 64, min size 5": _library("hdbscan", dims=64, min_cluster_size=5),
}
# the chapter V-measure of one run moves (sd up to 0.07) between random 80 % subsets of the same
# paragraphs, more than the pipelines differ; the default was chosen on dev by the mean over subsets
SUBSET_PIPELINES = ("k-means, raw vectors (before)", "k-means, PCA 64", "average linkage (cosine), raw vectors",
                    DEFAULT_PIPELINE, "Ward, raw vectors", "Ward, centred", "Ward, PCA 64")


def cluster_sets(split: str) -> dict[str, tuple[list[str], list[str]]]:
    blocks = d2l_blocks(split)
    return {"bank subfields": mltr_clustering(split), "d2l-tr chapters": paragraph_clusters(blocks, "chapter"),
            "d2l-tr sections": paragraph_clusters(blocks, "section")}


def measure_subsets(embedder: Embedder, split: str, subsets: int = 8, share: float = 0.8) -> list[dict]:
    """V-measure (k given) of ``SUBSET_PIPELINES``, mean and spread over random subsets of each set."""
    rows = []
    for set_name, (texts, labels) in cluster_sets(split).items():
        vectors, labels = embedder.encode(texts, prompt_name="query"), np.asarray(labels)
        rng = np.random.default_rng(0)
        chosen = [np.sort(rng.choice(len(texts), int(share * len(texts)), replace=False)) for _ in range(subsets)]
        for name in SUBSET_PIPELINES:
            scores = [v_measure_score(labels[c], PIPELINES[name]([texts[i] for i in c], vectors[c], len(set(labels))))
                      for c in chosen]
            rows.append({"split": split, "set": set_name, "pipeline": name, "subsets": subsets,
                         "mean": round(float(np.mean(scores)), 4), "sd": round(float(np.std(scores)), 4)})
    return rows


def measure_clusters(embedder: Embedder, split: str) -> list[dict]:
    rows = []
    for set_name, (texts, labels) in cluster_sets(split).items():
        vectors = embedder.encode(texts, prompt_name="query")
        for name, run in PIPELINES.items():
            for k in (len(set(labels)), None):
                if k is None and name.startswith("HDBSCAN"):
                    continue  # HDBSCAN always finds k itself; its row is under "given"
                predicted = np.asarray(run(texts, vectors, None if name.startswith("HDBSCAN") else k))
                rows.append({"split": split, "set": set_name, "labels": len(set(labels)), "pipeline": name,
                             "k": "given" if k else "silhouette", "clusters": int(len(set(predicted.tolist()) - {-1})),
                             "noise": round(float(np.mean(predicted == -1)), 3),
                             "v_measure": round(float(v_measure_score(labels, predicted)), 4)})
    return rows


# ---------------------------------------------------------------- paraphrase


def measure_paraphrase(embedder: Embedder) -> dict:
    detector = ParaphraseDetector.from_model(embedder)
    pairs, labels = mltr_calibration_pairs("test", negatives=["near-miss"])
    results = detector.predict(pairs)
    gold = [label >= 0.5 for label in labels]
    return {"paraphrase_f1": round(f1_score(gold, [r.paraphrase for r in results]), 4),
            "paraphrase_auc": round(roc_auc_score(gold, [r.cosine for r in results]), 4),
            "paraphrase_threshold_cosine": round(detector.calibration.cosine_threshold, 4)}


# ---------------------------------------------------------------- report


def _name(path: str) -> str:
    return {"e5-small": "base"}.get(Path(path).name, Path(path).name)


def table_head(title: str, names: list[str]) -> list[str]:
    """A markdown section title and a table's header rows."""
    return [f"\n### {title}\n", "| " + " | ".join(names) + " |", "|" + "---|" * len(names)]


def intent_tables(rows: list[dict], models: list[str]) -> str:
    out = []
    for split in dict.fromkeys(r["split"] for r in rows):
        out += table_head(f"Intents, {split}: in-scope accuracy / out-of-scope rejected", ["set", "method", "rule", *models])
        keys = dict.fromkeys((r["set"], r["method"], r["rule"]) for r in rows if r["split"] == split)
        for key in keys:
            cells = []
            for model in models:
                r = next(r for r in rows if (r["model"], r["split"], r["set"], r["method"], r["rule"]) == (model, split, *key))
                cell = f"{r['in_scope_accuracy']:.3f} / {r['out_of_scope_rejected']:.3f}"
                cells.append(cell + (f" ({r['own_unknown_rejected']})" if "own_unknown_rejected" in r else ""))
            out.append(f"| {key[0]} | {key[1]} | {key[2]} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def cluster_tables(rows: list[dict], models: list[str]) -> str:
    out = []
    for split in dict.fromkeys(r["split"] for r in rows):
        sets = list(dict.fromkeys(r["set"] for r in rows if r["split"] == split))
        columns = [(s, k) for s in sets for k in ("given", "silhouette")]
        out += table_head(f"Clustering, {split}: V-measure (k given = the number of labels | k by silhouette, clusters found)",
                          ["model", "pipeline", *(f"{s}, k {k}" for s, k in columns)])
        for model in models:
            for pipeline in PIPELINES:
                cells = []
                for s, k in columns:
                    found = [r for r in rows if (r["model"], r["split"], r["set"], r["pipeline"]) == (model, split, s, pipeline)
                             and (r["k"] == k or (k == "given" and pipeline.startswith("HDBSCAN")))]
                    if not found or (k == "silhouette" and pipeline.startswith("HDBSCAN")):
                        cells.append("-")
                        continue
                    r = found[0]
                    extra = f" ({r['clusters']}" + (f", {r['noise']:.0%} noise" if r["noise"] else "") + ")"
                    cells.append(f"{r['v_measure']:.3f}" + (extra if k == "silhouette" or r["noise"] else ""))
                out.append(f"| {model} | {pipeline} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def subset_tables(rows: list[dict], models: list[str]) -> str:
    out = []
    for split in dict.fromkeys(r["split"] for r in rows):
        sets = list(dict.fromkeys(r["set"] for r in rows if r["split"] == split))
        n = rows[0]["subsets"]
        out += table_head(f"Clustering, {split}: V-measure with k given, mean ± sd over {n} random 80 % subsets",
                          ["model", "pipeline", *sets, "mean"])
        for model in models:
            for pipeline in SUBSET_PIPELINES:
                found = {r["set"]: r for r in rows if (r["model"], r["split"], r["pipeline"]) == (model, split, pipeline)}
                if not found:
                    continue
                cells = [f"{found[s]['mean']:.3f} ± {found[s]['sd']:.3f}" for s in sets]
                out.append(f"| {model} | {pipeline} | " + " | ".join(cells)
                           + f" | {np.mean([found[s]['mean'] for s in sets]):.3f} |")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=list(DEFAULT_MODELS),
                        help="model folders or built-in names (default: base anlam-ml-tr-small)")
    parser.add_argument("--splits", nargs="+", default=["dev", "test"], choices=["dev", "test"])
    parser.add_argument("--only", nargs="+", default=list(PARTS), choices=PARTS)
    parser.add_argument("--out", type=Path, help="also write every row as JSON")
    parser.add_argument("--tables", type=Path, nargs="+", metavar="JSON",
                        help="print the tables of earlier --out files (one per model, say) instead of measuring")
    args = parser.parse_args()
    report: dict[str, list] = {part: [] for part in PARTS}
    names = []
    for saved in args.tables or []:
        for key, rows in json.loads(saved.read_text(encoding="utf-8")).items():
            report[key] += rows
            names = list(dict.fromkeys([*names, *(r["model"] for r in rows)]))
    if draw_out_of_scope() != out_of_scope_texts():
        raise SystemExit("anlam/samples/out_of_scope_tr.txt is not draw_out_of_scope(): rewrite it from that function")
    for model in [] if args.tables else args.models:
        start = time.perf_counter()
        embedder = CachedEmbedder(Embedder.from_pretrained(model, device="cpu"))
        name = _name(embedder.path)
        names.append(name)
        for split in args.splits:
            if "intents" in args.only:
                report["intents"] += [{"model": name, **r} for r in measure_intents(embedder, split)]
            if "clusters" in args.only:
                report["clusters"] += [{"model": name, **r} for r in measure_clusters(embedder, split)]
            if "subsets" in args.only:
                report["subsets"] += [{"model": name, **r} for r in measure_subsets(embedder, split)]
        if "paraphrase" in args.only:
            report["paraphrase"].append({"model": name, **measure_paraphrase(embedder)})
        print(f"{name}: {time.perf_counter() - start:.0f} s", flush=True)
    if report["intents"]:
        print(intent_tables(report["intents"], names))
    if report["clusters"]:
        print(cluster_tables(report["clusters"], names))
    if report["subsets"]:
        print(subset_tables(report["subsets"], names))
    if report["paraphrase"]:
        print("\n### Paraphrase, test (calibrated on dev)\n\n| metric | " + " | ".join(names) + " |\n|---|" + "---|" * len(names))
        for key in ("paraphrase_f1", "paraphrase_auc", "paraphrase_threshold_cosine"):
            print(f"| {key} | " + " | ".join(str(r[key]) for r in report["paraphrase"]) + " |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
