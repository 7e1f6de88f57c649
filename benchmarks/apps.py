"""The apps measured side by side for one or more models (base vs tuned):

    .venv/bin/python benchmarks/apps.py [MODEL ...] [--out runs/apps.json]

No MODEL means the embedded default base. For each model:
- paraphrase: F1 of the calibrated decision and ROC AUC of the cosine on ML-TR *test* pairs of
  grade "paraphrase" vs "near-miss" (the calibration comes from the model folder, or is fitted on
  ML-TR dev first and cached there);
- clustering: V-measure of k-means with k = the number of subfields, and with k chosen by
  silhouette, on the ML-TR test clustering set;
- intents: accuracy and macro-F1 on the bundled ML FAQ sample (nearest centroid, abstain
  threshold from the examples).
"""

from __future__ import annotations

import argparse
import json
import time
from importlib.resources import files
from pathlib import Path

from sklearn.metrics import f1_score, roc_auc_score, v_measure_score

from anlam.apps import (
    IntentMatcher,
    ParaphraseDetector,
    cluster_embeddings,
    evaluate_intents,
    load_intent_eval,
    load_intents,
    mltr_calibration_pairs,
)
from anlam.data import mltr_clustering
from anlam.models import Embedder

SAMPLES = Path(str(files("anlam.samples")))


def measure(model: str | None) -> dict:
    start = time.perf_counter()
    embedder = Embedder.from_pretrained(model, device="cpu")
    detector = ParaphraseDetector.from_model(embedder)
    pairs, labels = mltr_calibration_pairs("test", negatives=["near-miss"])
    results = detector.predict(pairs)
    gold = [label >= 0.5 for label in labels]
    out = {
        "model": embedder.path,
        "paraphrase_f1": round(f1_score(gold, [r.paraphrase for r in results]), 4),
        "paraphrase_auc": round(roc_auc_score(gold, [r.cosine for r in results]), 4),
        "paraphrase_threshold_cosine": round(detector.calibration.cosine_threshold, 4),
    }
    sentences, subfields = mltr_clustering("test")
    vectors = embedder.encode(sentences, prompt="query")
    fixed = cluster_embeddings(sentences, vectors, k=len(set(subfields)))
    auto = cluster_embeddings(sentences, vectors, k=None)
    out |= {
        "cluster_v_measure": round(v_measure_score(subfields, fixed.labels), 4),
        "cluster_v_measure_auto": round(v_measure_score(subfields, auto.labels), 4),
        "cluster_auto_k": auto.k,
    }
    intents = load_intents(SAMPLES / "ml_faq_intents.yaml")
    texts, gold_intents = load_intent_eval(SAMPLES / "ml_faq_eval.csv", list(intents))
    report = evaluate_intents(IntentMatcher(embedder, intents), texts, gold_intents)
    out |= {"intent_accuracy": report["accuracy"], "intent_macro_f1": report["macro_f1"],
            "seconds": round(time.perf_counter() - start, 1)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help="model folders (default: the embedded base)")
    parser.add_argument("--out", type=Path, help="also write the rows as JSON")
    args = parser.parse_args()
    rows = [measure(m) for m in (args.models or [None])]
    for row in rows:
        print(json.dumps(row, ensure_ascii=False))
    keys = [k for k in rows[0] if k != "model"]
    print("\n| metric | " + " | ".join(Path(r["model"]).name for r in rows) + " |")
    print("|---|" + "---|" * len(rows))
    for key in keys:
        print(f"| {key} | " + " | ".join(str(r[key]) for r in rows) + " |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
