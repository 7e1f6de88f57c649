"""Weight arithmetic between models fine-tuned from the same base, in place and without retraining."""

from __future__ import annotations

from typing import TYPE_CHECKING

from anlam.models.embedder import load_sentence_transformer

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


def merge_with_base(model: SentenceTransformer, base_path: str, weight: float) -> None:
    """Interpolate in weight space, in place: ``weight * tuned + (1 - weight) * base``.

    The base keeps what fine-tuning on a narrow domain forgets; the recipe ablation measures the weight.
    """
    import torch

    base = load_sentence_transformer(base_path, device="cpu").state_dict()
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name in base and tensor.dtype.is_floating_point:
                tensor.mul_(weight).add_(base[name].to(tensor.device), alpha=1.0 - weight)


def add_task_vector(model: SentenceTransformer, base_path: str, expert_path: str, weight: float) -> None:
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
