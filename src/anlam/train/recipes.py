"""Recipes: everything that decides a training run, as presets, a TOML file and overrides.

``load_recipe`` checks every field against ``Recipe``'s own type hints before anything trains, so a
typo in a TOML file fails in a second with the field named, not after an hour.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from types import NoneType
from typing import Literal, get_args, get_origin, get_type_hints

from anlam.errors import AnlamError
from anlam.io import PathLike

PresetName = Literal["card", "quick", "best", "sts-expert"]
PairsName = Literal["ml-tr", "stsb-tr", "none"]  # the built-in pairs when no --data is given
LossName = Literal["cosine", "cosent", "angle"]  # CosineSimilarityLoss | CoSENTLoss | AnglELoss
# the values of transformers.SchedulerType (tests/test_train.py keeps the two in step)
SchedulerName = Literal["linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
                        "inverse_sqrt", "reduce_lr_on_plateau", "cosine_with_min_lr", "cosine_warmup_with_min_lr",
                        "warmup_stable_decay", "greedy"]
D2LKind = Literal["heading", "section", "translation", "glossary"]  # anlam.data.d2l.training_pairs' kinds


@dataclass
class Recipe:
    """Everything that decides a training run. Presets below; any field can be overridden."""

    preset: PresetName = "card"
    pairs: PairsName = "ml-tr"
    loss: LossName = "cosine"
    epochs: float = 3.0
    batch_size: int = 64
    lr: float = 5e-5
    scheduler: SchedulerName = "linear"
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
    d2l_kinds: list[D2LKind] = field(default_factory=lambda: ["heading", "section", "translation", "glossary"])
    distill: int = 0  # Turkish d2l-tr paragraphs regressed onto the frozen base's English embedding (MSE)
    matryoshka: list[int] = field(default_factory=list)  # e.g. [384, 256, 128, 64]
    merge_base: float = 1.0  # tuned weight when interpolating with the base (1.0: tuned only)
    expert: Literal["", PresetName] = ""  # a preset trained from the same base after the run, added as a task vector
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
    """A preset, then the TOML ``config`` file's fields, then non-None ``overrides``.

    Raises:
        AnlamError: unknown preset, unreadable config, an unknown field, a value of the wrong type or
            outside its fixed set, or an ``expert`` that has an expert of its own (checked here,
            before an hour of training, not after).
    """
    hints = get_type_hints(Recipe)
    _check("", "preset", preset, hints["preset"])
    values: dict[str, object] = {}
    if config:
        try:
            values = tomllib.loads(Path(config).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise AnlamError(f"{config}: cannot read config ({exc})") from None
        _check_all(f"{config}: ", values, hints)
    given = {k: v for k, v in overrides.items() if v is not None}
    _check_all("", given, hints)
    values |= given
    # TOML writes 3 for 3.0: store the float the field says
    values = {k: float(v) if hints[k] is float and isinstance(v, int) else v for k, v in values.items()}
    recipe = replace(PRESETS[preset], **values)  # type: ignore[arg-type]  # checked above against the hints
    if recipe.expert and PRESETS[recipe.expert].expert:
        raise AnlamError(f"expert {recipe.expert!r}: not a preset without an expert of its own "
                         f"(choose from {', '.join(n for n, r in PRESETS.items() if not r.expert)})")
    return recipe


def _check_all(where: str, values: dict[str, object], hints: dict[str, object]) -> None:
    known = [f.name for f in fields(Recipe)]
    for name, value in values.items():
        if name not in hints:
            raise AnlamError(f"{where}unknown field {name!r} (known: {', '.join(known)})")
        _check(where, name, value, hints[name])


def _check(where: str, name: str, value: object, hint: object) -> None:
    if not _fits(value, hint):
        raise AnlamError(f"{where}{name} = {value!r}: expected {_expected(hint)}")


def _fits(value: object, hint: object) -> bool:
    """Whether ``value`` is of type ``hint``: an int is a float here, a bool is not an int."""
    origin, args = get_origin(hint), get_args(hint)
    if origin is Literal:
        return any(type(value) is type(choice) and value == choice for choice in args)
    if origin is list:
        return isinstance(value, list) and all(_fits(item, args[0]) for item in value)
    if args:  # a union
        return any(_fits(value, arm) for arm in args)
    if isinstance(value, bool):
        return hint is bool
    if hint is float:
        return isinstance(value, int | float)
    return isinstance(hint, type) and isinstance(value, hint)


_SINGULAR = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
_PLURAL = {bool: "true or false values", int: "integers", float: "numbers", str: "strings"}


def _expected(hint: object, plural: bool = False) -> str:
    """``hint`` in words, for the error message."""
    origin, args = get_origin(hint), get_args(hint)
    if origin is Literal:
        return ("" if plural else "one of ") + "|".join(str(choice) or '""' for choice in args)
    if origin is list:
        return f"a list of {_expected(args[0], plural=True)}"
    if args:  # a union; None means "unset", which a TOML file cannot write
        return " or ".join(_expected(arm, plural) for arm in args if arm is not NoneType)
    names = _PLURAL if plural else _SINGULAR
    return names.get(hint, str(hint))  # type: ignore[call-overload]
