"""The model card (README.md) of a trained model: recipe, data, training log, evaluation."""

from __future__ import annotations

from pathlib import Path


def _log_table(log: list[dict], max_rows: int = 40) -> str:
    rows = log if len(log) <= max_rows else log[:: max(1, len(log) // max_rows)] + [log[-1]]
    body = "\n".join(f"| {r['epoch']:.4f} | {r['step']} | {r['loss']:.4f} |" for r in rows)
    return "| Epoch | Step | Training Loss |\n|---|---|---|\n" + body


def render_card(recipe: dict, base: str, data: str, stats: dict, log: list[dict], eval_markdown: str | None,
                seconds: float, steps: int) -> str:
    """Markdown with Hugging Face front matter; loads as the README of a sentence-transformers folder."""
    recipe_rows = "\n".join(f"| {k} | {v} |" for k, v in recipe.items())
    data_rows = "\n".join(f"| {name} | {s['rows']:,} | {s.get('label_mean', '–')} |" for name, s in stats.items())
    evaluation = eval_markdown or "_Not evaluated in this run; run `anlam eval BASE THIS_FOLDER`._\n"
    return f"""---
language: [tr]
library_name: sentence-transformers
pipeline_tag: sentence-similarity
base_model: {Path(base).name}
tags: [sentence-transformers, sentence-similarity, feature-extraction, turkish, machine-learning, anlam]
---

# Turkish ML sentence embeddings (anlam, preset `{recipe['preset']}`)

Fine-tuned from `{Path(base).name}` with `anlam train` on Turkish machine-learning text.
It is a plain sentence-transformers folder:

```python
from sentence_transformers import SentenceTransformer
model = SentenceTransformer("PATH_TO_THIS_FOLDER")
vectors = model.encode(["Aşırı öğrenme nedir?", "Dropout nöronları rastgele kapatır."])
```

The folder names `query` as its default prompt, so the plain call above embeds sentences and
questions the way the model was trained and evaluated. For documents you index for search, pass
`prompt_name="passage"` (`model.encode_document(...)` does the same).

## Recipe
| setting | value |
|---|---|
{recipe_rows}

Trained for {steps} steps in {seconds / 60:.1f} minutes.

## Training data ({data})
| dataset | rows | mean label |
|---|---|---|
{data_rows}

## Evaluation (base vs this model, `anlam eval`)
{evaluation}
## Training log
{_log_table(log)}

![loss curve](loss-curve.png)
"""
