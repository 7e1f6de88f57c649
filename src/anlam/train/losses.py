"""What each dataset of a run trains with: its loss and its prompts (sentence-transformers objects)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from anlam.train.recipes import Recipe

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer
    from torch import nn


def build_losses(model: SentenceTransformer, recipe: Recipe, names: list[str]) -> dict[str, nn.Module]:
    """One loss per dataset: the recipe's pair loss, MSE for distillation, MultipleNegativesRanking for the
    rest; Matryoshka wraps each when the recipe lists dimensions."""
    from sentence_transformers.sentence_transformer import losses

    pair_losses = {"cosine": losses.CosineSimilarityLoss, "cosent": losses.CoSENTLoss, "angle": losses.AnglELoss}

    def loss_for(name: str) -> nn.Module:
        if name == "pairs":
            return pair_losses[recipe.loss](model)
        if name == "distill":
            return losses.MSELoss(model)
        return losses.MultipleNegativesRankingLoss(model)

    chosen = {name: loss_for(name) for name in names}
    if recipe.matryoshka:
        width = model.get_embedding_dimension() or max(recipe.matryoshka)
        dims = sorted({d for d in recipe.matryoshka if d <= width}, reverse=True)
        chosen = {name: losses.MatryoshkaLoss(model, loss, matryoshka_dims=dims) for name, loss in chosen.items()}
    return chosen


def dataset_prompts(model: SentenceTransformer, names: list[str]) -> dict[str, Any] | None:
    """e5-style prompts per dataset (the trainer's ``prompts``): one for all its columns or one per
    column; None for a base that defines none."""
    prompts = model.prompts or {}
    query = prompts.get("query")
    if not query:
        return None
    passage = prompts.get("passage") or query
    # e5 gives both sides of a symmetric task "query: "; a heading finds a passage
    per: dict[str, Any] = {
        "triplets": {"anchor": query, "positive": passage, "negative": passage},
        "d2l-heading": {"anchor": query, "positive": passage}}
    return {name: per.get(name, query) for name in names}
