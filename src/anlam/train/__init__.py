"""Training recipes on the sentence-transformers trainer.

Read in this order: ``recipes`` (a ``Recipe``: presets ``card``, ``quick``, ``best``, ``sts-expert``;
a TOML file and CLI flags override fields, checked against the field types) -> ``data`` (ML-TR pairs
or the user's file, plus what the recipe mixes in: triplets, d2l-tr real-text pairs, distillation
targets, general Turkish, typing augmentation) -> ``losses`` (a loss and prompts per dataset) ->
``run`` (``SentenceTransformerTrainer``, weight arithmetic with the base and an optional expert, then
the model, its ``card``, the loss curve and the completion marker).
"""

from anlam.train.data import data_statistics, training_data
from anlam.train.losses import build_losses
from anlam.train.recipes import PRESETS, Recipe, load_recipe
from anlam.train.run import MARKER, TrainResult, is_finished, train

__all__ = ["MARKER", "PRESETS", "Recipe", "TrainResult", "build_losses", "data_statistics", "is_finished",
           "load_recipe", "train", "training_data"]
