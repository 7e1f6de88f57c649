"""Seconds per training step: anlam's trainer path vs a plain sentence-transformers loop,
with and without frozen word embeddings, measured side by side in one run.

    .venv/bin/python benchmarks/train.py [--steps 12] [--batch-size 16] [--model PATH]

Both paths train CoSENT on the same ML-TR pairs at max_seq_length 64; the first two steps of
each run are warm-up and not timed. Prints a JSON line per configuration and the ratios.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from transformers import TrainerCallback


class StepTimer(TrainerCallback):
    """Wall time of each optimizer step."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._start = 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter() - self._start)


def plain_loop(model_path: str, steps: int, batch_size: int, freeze: bool, out: Path) -> list[float]:
    """What a user would write by hand with sentence-transformers alone."""
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.losses import CoSENTLoss

    from anlam.data import mltr_pairs

    model = SentenceTransformer(model_path, device="cpu")
    model.max_seq_length = 64
    if freeze:
        model[0].auto_model.get_input_embeddings().weight.requires_grad_(False)
    data = Dataset.from_pandas(mltr_pairs("train")[["sentence_0", "sentence_1", "label"]].head(steps * batch_size * 2))
    timer = StepTimer()
    args = SentenceTransformerTrainingArguments(output_dir=str(out), max_steps=steps, per_device_train_batch_size=batch_size,
                                                learning_rate=5e-5, save_strategy="no", report_to="none", use_cpu=True,
                                                prompts=model.prompts.get("query"), disable_tqdm=True)
    SentenceTransformerTrainer(model=model, args=args, train_dataset=data, loss=CoSENTLoss(model), callbacks=[timer]).train()
    return timer.times


def anlam_loop(model_path: str, steps: int, batch_size: int, freeze: bool, out: Path) -> list[float]:
    """``anlam.train.train`` with the quick preset, timed through the same callback."""
    import sentence_transformers

    from anlam.train import load_recipe, train

    timer = StepTimer()
    original = sentence_transformers.SentenceTransformerTrainer

    class Timed(original):  # anlam.train.run imports the trainer at call time, so this one is used
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            self.add_callback(timer)

    sentence_transformers.SentenceTransformerTrainer = Timed
    try:
        # the same work as the plain loop: CoSENT on ML-TR pairs only
        recipe = load_recipe("quick", max_steps=steps, batch_size=batch_size, freeze_embeddings=freeze, typing_augment=0,
                             triplets=False, max_pairs=steps * batch_size * 2, save_steps=10_000, warmup_ratio=0.0)
        train(out, recipe, base=model_path, device="cpu", evaluate=False, overwrite=True)
    finally:
        sentence_transformers.SentenceTransformerTrainer = original
    return timer.times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--model", default=None, help="base model folder (default: the embedded e5-small)")
    args = parser.parse_args()
    from anlam.models import resolve_model_path

    model_path = resolve_model_path(args.model)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for freeze in (True, False):
            for name, loop in (("plain", plain_loop), ("anlam", anlam_loop)):
                times = loop(model_path, args.steps, args.batch_size, freeze, Path(tmp) / f"{name}-{freeze}")[2:]
                key = f"{name}{'-frozen' if freeze else ''}"
                results[key] = sum(times) / len(times)
                print(json.dumps({"run": key, "seconds_per_step": round(results[key], 3), "steps_timed": len(times)}))
    print(json.dumps({
        "anlam_over_plain_frozen": round(results["anlam-frozen"] / results["plain-frozen"], 3),
        "anlam_over_plain_trainable": round(results["anlam"] / results["plain"], 3),
        "trainable_over_frozen": round(results["anlam"] / results["anlam-frozen"], 3),
    }))


if __name__ == "__main__":
    main()
