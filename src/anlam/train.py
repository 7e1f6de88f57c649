"""Training recipes on the sentence-transformers trainer.

Read top to bottom: a ``Recipe`` (presets ``card``, ``quick``, ``best``, ``sts-expert``; a TOML
file and CLI flags override fields) -> ``training_data`` (ML-TR pairs or the user's file, plus what
the recipe mixes in: triplets, d2l-tr real-text pairs, distillation targets, general Turkish) ->
``losses`` -> ``SentenceTransformerTrainer`` (it owns the loop,
checkpoints, resume, DDP under torchrun) -> weight arithmetic with the base and an optional expert
-> save, card, completion marker. anlam adds nothing inside the loop.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import pandas as pd

from anlam.data import load_pairs, mltr_pairs, mltr_triplets, stsb_tr, tqp
from anlam.data.d2l import d2l_blocks
from anlam.data.d2l import training_pairs as d2l_training_pairs
from anlam.errors import AnlamError
from anlam.io import TRAINING_RUN, check_output_folder, write_json
from anlam.models import load_sentence_transformer, pick_device, resolve_model_path
from anlam.text import ascii_fold, tr_upper

logger = logging.getLogger(__name__)

PathLike = Path | str
MARKER = TRAINING_RUN.marker  # "anlam_training.json", written last: its presence means the run finished
STARTED = TRAINING_RUN.also[0]  # written first, removed after MARKER: a run of anlam's that has not finished


@dataclass
class Recipe:
    """Everything that decides a training run. Presets below; any field can be overridden."""

    preset: str = "card"
    pairs: str = "ml-tr"  # the built-in pairs when no --data is given: ml-tr | stsb-tr | none
    loss: str = "cosine"  # cosine (CosineSimilarityLoss) | cosent | angle
    epochs: float = 3.0
    batch_size: int = 64
    lr: float = 5e-5
    scheduler: str = "linear"
    warmup_ratio: float = 0.0
    seed: int = 42
    max_seq_length: int | None = None  # None or 0: the base model's own (a short one is faster but see docs)
    freeze_embeddings: bool = False  # the word-embedding matrix (250k x 384 on e5) stays fixed
    max_pairs: int | None = None  # a seeded subset of the training pairs (None or 0: all)
    typing_augment: int = 0  # sentences that get ASCII-folded and capitalised twins (label 1.0)
    triplets: bool = False  # MultipleNegativesRanking on the ML-TR hard-negative triplets
    max_triplets: int | None = None  # a seeded subset of them (None or 0: all)
    general_sts: bool = False  # STSb-TR train pairs mixed in (against forgetting general Turkish)
    general_tqp: int = 0  # TQP paraphrase pairs mixed in, as MultipleNegativesRanking pairs
    d2l_pairs: int = 0  # d2l-tr train-chapter pairs per kind (MultipleNegativesRanking; 0: none)
    d2l_kinds: list[str] = field(default_factory=lambda: ["heading", "section", "translation", "glossary"])
    distill: int = 0  # Turkish d2l-tr paragraphs regressed onto the frozen base's English embedding (MSE)
    matryoshka: list[int] = field(default_factory=list)  # e.g. [384, 256, 128, 64]
    merge_base: float = 1.0  # tuned weight when interpolating with the base (1.0: tuned only)
    expert: str = ""  # a preset trained from the same base after the run, added as a task vector
    expert_weight: float = 0.5  # its weight: tuned + expert_weight * (expert - base)
    max_steps: int = -1
    save_steps: int = 200
    logging_steps: int = 10


PRESETS: dict[str, Recipe] = {
    # bge-m3-ml-tr-specialized's published recipe, unchanged
    "card": Recipe(preset="card"),
    # demo / CI size: a seeded subset that finishes in minutes on 2 CPU cores
    "quick": Recipe(preset="quick", loss="cosent", epochs=1.0, batch_size=16, lr=5e-5, warmup_ratio=0.1,
                    max_seq_length=128, freeze_embeddings=True, max_pairs=1600, typing_augment=200, triplets=True,
                    max_triplets=600, d2l_pairs=400, max_steps=150, merge_base=0.25, save_steps=50),
    # ours, chosen on the dev split (docs/training.md has the numbers that chose it)
    "best": Recipe(preset="best", loss="cosent", epochs=1.0, batch_size=32, lr=5e-5, warmup_ratio=0.1,
                   max_seq_length=96, freeze_embeddings=True, typing_augment=3000, triplets=True, general_sts=True,
                   general_tqp=4000, expert="sts-expert", expert_weight=0.5, save_steps=200),
    # general Turkish similarity: STSb-TR train alone; `best` adds it to the domain run as a task vector
    "sts-expert": Recipe(preset="sts-expert", pairs="stsb-tr", loss="cosent", epochs=2.0, batch_size=16, lr=5e-5,
                         warmup_ratio=0.1, max_seq_length=64, freeze_embeddings=True, save_steps=200),
}


def load_recipe(preset: str = "card", config: PathLike | None = None, **overrides: object) -> Recipe:
    """A preset, then the TOML ``config`` file's keys, then non-None ``overrides``.

    Raises:
        AnlamError: unknown preset, unreadable config, an unknown key, or an ``expert`` that is not
            a preset (checked here, before an hour of training, not after).
    """
    if preset not in PRESETS:
        raise AnlamError(f"unknown preset {preset!r} (choose from {', '.join(PRESETS)})")
    recipe = replace(PRESETS[preset])
    known = {f.name for f in fields(Recipe)}
    values: dict[str, object] = {}
    if config:
        try:
            values |= tomllib.loads(Path(config).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise AnlamError(f"{config}: cannot read config ({exc})") from None
        for key in values:
            if key not in known:
                raise AnlamError(f"{config}: unknown key {key!r} (known: {', '.join(sorted(known))})")
    values |= {k: v for k, v in overrides.items() if v is not None}
    recipe = replace(recipe, **values)
    if recipe.expert and (recipe.expert not in PRESETS or PRESETS[recipe.expert].expert):
        raise AnlamError(f"expert {recipe.expert!r}: not a preset without an expert of its own "
                         f"(choose from {', '.join(n for n, r in PRESETS.items() if not r.expert)})")
    return recipe


# ---------------------------------------------------------------- data


def _typing_twins(sentences: list[str], n: int, rng: np.random.Generator) -> pd.DataFrame:
    """(sentence, same sentence typed without Turkish letters / in capitals, 1.0)."""
    chosen = [sentences[i] for i in rng.choice(len(sentences), size=min(n, len(sentences)), replace=False)]
    rows = [(s, variant(s), 1.0) for s in chosen for variant in (ascii_fold, tr_upper) if variant(s) != s]
    return pd.DataFrame(rows, columns=["sentence_0", "sentence_1", "label"])


def _typed_like_users(pairs: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Copies of ``n`` pairs, one side ASCII-folded or capitalised, label unchanged."""
    picked = pairs.iloc[rng.choice(len(pairs), size=min(n, len(pairs)), replace=False)].copy()
    flip = rng.random(len(picked)) < 0.7
    picked["sentence_0"] = [ascii_fold(s) if f else tr_upper(s) for s, f in zip(picked["sentence_0"], flip)]
    return picked


def _with_typed_anchors(frame: pd.DataFrame, recipe: Recipe) -> pd.DataFrame:
    """With ``typing_augment``, 30 % more rows whose anchor (the query) is typed without Turkish letters; shuffled."""
    if recipe.typing_augment:
        typed = frame.sample(frac=0.3, random_state=recipe.seed).assign(anchor=lambda f: f["anchor"].map(ascii_fold))
        frame = pd.concat([frame, typed], ignore_index=True)
    return frame.sample(frac=1.0, random_state=recipe.seed).reset_index(drop=True)


def _builtin_pairs(name: str) -> pd.DataFrame:
    """ML-TR or STSb-TR train pairs; identical sides are dropped (their cosine is 1 whatever the model)."""
    if name not in ("ml-tr", "stsb-tr"):
        raise AnlamError(f"unknown pairs {name!r} (choose ml-tr, stsb-tr or none)")
    pairs = mltr_pairs("train") if name == "ml-tr" else stsb_tr("train")
    pairs = pairs[pairs["sentence_0"] != pairs["sentence_1"]]
    return pairs[["sentence_0", "sentence_1", "label"]].reset_index(drop=True)


def training_data(recipe: Recipe, data: PathLike | None = None, columns: str | None = None,
                  scale: float | None = None) -> dict[str, pd.DataFrame]:
    """The named datasets of the run: ``pairs`` (unless the recipe says none), then ``triplets``,
    ``d2l-*``, ``distill`` and ``tqp`` as the recipe asks.

    ``data`` is the user's pair file (validated by ``anlam.data.load_pairs``); default the recipe's
    built-in ``pairs`` (ML-TR train, or STSb-TR train for ``sts-expert``).
    """
    rng = np.random.default_rng(recipe.seed)
    out: dict[str, pd.DataFrame] = {}
    if data or recipe.pairs != "none":
        pairs = load_pairs(data, columns, scale) if data else _builtin_pairs(recipe.pairs)
        if recipe.max_pairs and recipe.max_pairs < len(pairs):
            pairs = pairs.sample(n=recipe.max_pairs, random_state=recipe.seed)
        parts = [pairs]
        if recipe.typing_augment:
            sentences = sorted(set(pairs["sentence_0"]) | set(pairs["sentence_1"]))
            parts += [_typing_twins(sentences, recipe.typing_augment, rng),
                      _typed_like_users(pairs, recipe.typing_augment, rng)]
        if recipe.general_sts:
            parts.append(stsb_tr("train"))
        out["pairs"] = pd.concat(parts, ignore_index=True).sample(frac=1.0, random_state=recipe.seed).reset_index(drop=True)
    if recipe.triplets:
        triplets = mltr_triplets("train")
        if recipe.max_triplets and recipe.max_triplets < len(triplets):
            triplets = triplets.sample(n=recipe.max_triplets, random_state=recipe.seed)
        out["triplets"] = _with_typed_anchors(triplets, recipe)
    if recipe.d2l_pairs:
        kinds = d2l_training_pairs(recipe.d2l_pairs, recipe.seed)
        unknown = sorted(set(recipe.d2l_kinds) - set(kinds))
        if unknown:
            raise AnlamError(f"d2l_kinds: unknown {', '.join(unknown)} (choose from {', '.join(kinds)})")
        out |= {f"d2l-{kind}": kinds[kind] for kind in recipe.d2l_kinds}
        if "d2l-heading" in out:
            out["d2l-heading"] = _with_typed_anchors(out["d2l-heading"], recipe)
    if recipe.distill:
        paragraphs = d2l_blocks("train").query("kind == 'paragraph' and en != ''")
        out["distill"] = paragraphs.sample(n=min(recipe.distill, len(paragraphs)), random_state=recipe.seed)[["tr", "en"]]
    if recipe.general_tqp:
        general = tqp("train").sample(n=recipe.general_tqp, random_state=recipe.seed)
        out["tqp"] = general.rename(columns={"sentence_0": "anchor", "sentence_1": "positive"})[["anchor", "positive"]]
    return out


def data_statistics(datasets: dict[str, pd.DataFrame]) -> dict[str, dict]:
    """Rows and label summary per dataset, for the log and the model card."""
    stats = {}
    for name, frame in datasets.items():
        entry: dict[str, object] = {"rows": len(frame), "columns": list(frame.columns)}
        if "label" in frame and pd.api.types.is_numeric_dtype(frame["label"]):
            entry["label_mean"] = round(float(frame["label"].mean()), 3)
            entry["label_histogram"] = np.histogram(frame["label"], bins=5, range=(0, 1))[0].tolist()
        stats[name] = entry
    return stats


# ---------------------------------------------------------------- model and losses


def _pair_loss(model, name: str):
    from sentence_transformers.sentence_transformer import losses

    if name == "cosine":
        return losses.CosineSimilarityLoss(model)
    if name == "cosent":
        return losses.CoSENTLoss(model)
    if name == "angle":
        return losses.AnglELoss(model)
    raise AnlamError(f"unknown loss {name!r} (choose cosine, cosent or angle)")


def build_losses(model, recipe: Recipe, names: list[str]) -> dict:
    """One loss per dataset: the recipe's pair loss, MSE for distillation, MultipleNegativesRanking for the
    rest; Matryoshka wraps each when the recipe lists dimensions."""
    from sentence_transformers.sentence_transformer import losses

    def loss_for(name: str):
        if name == "pairs":
            return _pair_loss(model, recipe.loss)
        if name == "distill":
            return losses.MSELoss(model)
        return losses.MultipleNegativesRankingLoss(model)

    chosen = {name: loss_for(name) for name in names}
    if recipe.matryoshka:
        dims = sorted({d for d in recipe.matryoshka if d <= model.get_embedding_dimension()}, reverse=True)
        chosen = {name: losses.MatryoshkaLoss(model, loss, matryoshka_dims=dims) for name, loss in chosen.items()}
    return chosen


def _prompts(model, names: list[str]) -> dict | None:
    """e5-style prompts per dataset column; None for a base that defines no prompts."""
    prompts = model.prompts or {}
    query, passage = prompts.get("query"), prompts.get("passage", prompts.get("query"))
    if not query:
        return None
    # e5 gives both sides of a symmetric task "query: "; a heading finds a passage
    per = {"triplets": {"anchor": query, "positive": passage, "negative": passage},
           "d2l-heading": {"anchor": query, "positive": passage}}
    return {name: per.get(name, query) for name in names}


def _distillation_targets(model, frame: pd.DataFrame) -> pd.DataFrame:
    """``sentence`` (Turkish) and ``label``: the untrained model's embedding of the English original.

    e5's English space is its strongest; regressing the Turkish side onto it (Reimers & Gurevych,
    2020) carries that over to Turkish. The teacher is the base itself, before the first step.
    """
    prompt = (model.prompts or {}).get("query", "")
    teacher = model.encode(frame["en"].tolist(), prompt=prompt, batch_size=32, convert_to_numpy=True,
                           normalize_embeddings=True, show_progress_bar=True)
    return pd.DataFrame({"sentence": frame["tr"].tolist(), "label": list(teacher.astype(np.float32))})


def _freeze_word_embeddings(model) -> None:
    first = model[0]
    auto_model = getattr(first, "auto_model", None) or getattr(first, "model", None)
    if auto_model is None or not hasattr(auto_model, "get_input_embeddings"):
        raise AnlamError("--freeze-embeddings: the first module of this model has no word-embedding matrix")
    auto_model.get_input_embeddings().weight.requires_grad_(False)


def merge_with_base(model, base_path: str, weight: float) -> None:
    """Interpolate in weight space, in place: ``weight * tuned + (1 - weight) * base``.

    The base keeps what fine-tuning on a narrow domain forgets; the recipe ablation measures the weight.
    """
    import torch

    base = load_sentence_transformer(base_path, device="cpu").state_dict()
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name in base and tensor.dtype.is_floating_point:
                tensor.mul_(weight).add_(base[name].to(tensor.device), alpha=1.0 - weight)


def add_task_vector(model, base_path: str, expert_path: str, weight: float) -> None:
    """Task arithmetic, in place: ``model + weight * (expert - base)`` (Ilharco et al., 2023).

    Both models were fine-tuned from ``base``; adding the expert's difference brings in what it
    learnt (general Turkish similarity) without a joint run. benchmarks/task_arithmetic.py measures it.
    """
    import torch

    base = load_sentence_transformer(base_path, device="cpu").state_dict()
    expert = load_sentence_transformer(expert_path, device="cpu").state_dict()
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name in base and name in expert and tensor.dtype.is_floating_point:
                tensor.add_((expert[name] - base[name]).to(tensor.device), alpha=weight)


# ---------------------------------------------------------------- the run


@dataclass
class TrainResult:
    """What a run produced; ``main`` is False on the non-zero ranks of a distributed run."""

    out: Path
    seconds: float
    steps: int
    log: list[dict]
    metrics: dict | None
    main: bool = True


def _prepare_out(out: Path, overwrite: bool, resume: bool, inputs: list) -> None:
    """Refuse anything in ``out`` but a run of ours (``anlam.io.check_output_folder``); then clear, resume or refuse it."""
    if check_output_folder(out, TRAINING_RUN, overwrite=True, inputs=inputs):  # True: a run of ours is there
        if overwrite:
            shutil.rmtree(out)
        elif is_finished(out):
            raise AnlamError(f"{out}: a finished model is already there (use --overwrite to replace it)")
        elif not resume:
            raise AnlamError(f"{out}: exists with an unfinished run (use --resume to continue it or --overwrite)")
    out.mkdir(parents=True, exist_ok=True)
    if not is_finished(out):
        write_json(out / STARTED, {"written_by": TRAINING_RUN.command})


def _loss_log(history: list[dict]) -> list[dict]:
    return [{"epoch": round(h["epoch"], 3), "step": h["step"], "loss": round(h["loss"], 4)} for h in history if "loss" in h]


def _loss_curve(log: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([r["step"] for r in log], [r["loss"] for r in log], marker=".")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_title("anlam training loss")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def train(
    out: PathLike,
    recipe: Recipe,
    base: PathLike | None = None,
    data: PathLike | None = None,
    columns: str | None = None,
    scale: float | None = None,
    device: str | None = None,
    overwrite: bool = False,
    resume: bool = False,
    evaluate: bool = True,
) -> TrainResult:
    """Fine-tune ``base`` with ``recipe`` into ``out`` (a plain sentence-transformers folder).

    Raises:
        AnlamError: bad data, a base that is not a model, an ``out`` that holds anything but an
            earlier run (or holds one, without ``overwrite``/``resume``), or a write error.
    """
    from datasets import Dataset, DatasetDict
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments

    out = Path(out)
    base_path = resolve_model_path(base or "base")  # the raw base, whatever the default model is
    datasets = training_data(recipe, data, columns, scale)  # validate data before touching anything
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if not distributed or int(os.environ.get("RANK", "0")) == 0:
        _prepare_out(out, overwrite, resume, [base_path, data])
    device = pick_device(device)
    model = load_sentence_transformer(base_path, device=device)
    base_max_length = model.max_seq_length
    if recipe.max_seq_length:
        model.max_seq_length = recipe.max_seq_length
    if recipe.freeze_embeddings:
        _freeze_word_embeddings(model)
    if "distill" in datasets:
        datasets["distill"] = _distillation_targets(model, datasets["distill"])
    names = list(datasets)
    train_dataset = DatasetDict({n: Dataset.from_pandas(f, preserve_index=False) for n, f in datasets.items()})
    args = SentenceTransformerTrainingArguments(
        output_dir=str(out / "checkpoints"),
        num_train_epochs=recipe.epochs,
        max_steps=recipe.max_steps,
        per_device_train_batch_size=recipe.batch_size,
        learning_rate=recipe.lr,
        lr_scheduler_type=recipe.scheduler,
        warmup_steps=recipe.warmup_ratio,  # a float below 1 is a ratio of all steps (transformers 5)
        seed=recipe.seed,
        data_seed=recipe.seed,
        save_strategy="steps",
        save_steps=recipe.save_steps,
        save_total_limit=2,
        logging_steps=recipe.logging_steps,
        prompts=_prompts(model, names),
        batch_sampler="no_duplicates",
        use_cpu=device == "cpu",
        ddp_backend="gloo" if distributed and device == "cpu" else None,
        report_to="none",
        disable_tqdm=False,
        dataloader_drop_last=distributed,
    )
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=train_dataset if len(names) > 1 else train_dataset[names[0]],
        loss=(lambda ls: ls if len(names) > 1 else ls[names[0]])(build_losses(model, recipe, names)),
    )
    # a checkpoint is complete once the trainer has written its state file (the last thing it saves)
    checkpoints = sorted((p for p in (out / "checkpoints").glob("checkpoint-*") if (p / "trainer_state.json").exists()),
                         key=lambda p: int(p.name.split("-")[1]))
    started = time.time()
    trainer.train(resume_from_checkpoint=str(checkpoints[-1]) if resume and checkpoints else None)
    seconds = time.time() - started
    log = _loss_log(trainer.state.log_history)
    expert = _train_expert(recipe, out, base_path, device, resume)
    if not trainer.is_world_process_zero():
        return TrainResult(out, seconds, trainer.state.global_step, log, None, main=False)
    if recipe.merge_base < 1.0:
        merge_with_base(model, base_path, recipe.merge_base)
    if expert:
        add_task_vector(model, base_path, str(expert), recipe.expert_weight)
        seconds += json.loads((expert / MARKER).read_text(encoding="utf-8"))["seconds"]
        shutil.rmtree(expert)
    model.max_seq_length = base_max_length  # a short training length is for speed, not for inference
    return _finish(model, out, recipe, base_path, data, datasets, log, seconds, trainer.state.global_step, evaluate, device)


def _train_expert(recipe: Recipe, out: Path, base_path: str, device: str, resume: bool) -> Path | None:
    """Train ``recipe.expert`` (a preset) from the same base into ``OUT/expert``; a finished one is reused on resume."""
    if not recipe.expert:
        return None
    folder = out / "expert"
    if not is_finished(folder):
        expert = load_recipe(recipe.expert, seed=recipe.seed)
        train(folder, expert, base=base_path, device=device, resume=resume, evaluate=False)
    return folder


def _finish(model, out: Path, recipe: Recipe, base_path: str, data: PathLike | None, datasets: dict[str, pd.DataFrame],
            log: list[dict], seconds: float, steps: int, evaluate: bool, device: str) -> TrainResult:
    """Save the model, its card and the loss curve; the completion marker goes last."""
    from anlam.modelcard import render_card

    if "query" in (model.prompts or {}):
        model.default_prompt_name = "query"  # SentenceTransformer(path).encode(texts) then embeds as anlam does
    try:
        model.save_pretrained(str(out))
        _loss_curve(log, out / "loss-curve.png")
        metrics = None
        markdown = None
        if evaluate:
            from anlam.evaluate import run_suite

            report = run_suite([base_path, str(out)], out / "eval", device=device, overwrite=True)
            metrics, markdown = report["metrics"], report["markdown"]
        stats = data_statistics(datasets)
        (out / "README.md").write_text(
            render_card(recipe=asdict(recipe), base=base_path, data=str(data or "ML-TR train"), stats=stats, log=log,
                        eval_markdown=markdown, seconds=seconds, steps=steps), encoding="utf-8")
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
        marker = {"recipe": asdict(recipe), "base": base_path, "data": str(data or "ML-TR train"), "data_stats": stats,
                  "seconds": round(seconds, 1), "steps": steps, "log": log, "metrics": metrics}
        tmp = out / f".{MARKER}.tmp"
        tmp.write_text(json.dumps(marker, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        tmp.rename(out / MARKER)
        (out / STARTED).unlink(missing_ok=True)
    except OSError as exc:
        raise AnlamError(f"{out}: cannot write the trained model ({exc.strerror or exc})") from None
    return TrainResult(out, seconds, steps, log, metrics)


def is_finished(path: PathLike) -> bool:
    """True when ``path`` holds a completed anlam training run."""
    return (Path(path) / MARKER).exists()


__all__ = ["MARKER", "PRESETS", "Recipe", "TrainResult", "add_task_vector", "build_losses", "data_statistics",
           "is_finished", "load_recipe", "merge_with_base", "train", "training_data"]
