"""The built-in tuned model ``anlam-ml-tr-small``, shipped as a small delta on the embedded base.

The package carries only what fine-tuning changed (tuned minus base, per tensor: int8 rows with
float32 scales for matrices, float16 for vectors), so the install stays small; the full model is
rebuilt once, offline, from the base that ``ensure_default_base`` already builds deterministically.
Checksums on the delta and on the base turn a damaged file or another base into an error, never
into a silently different model.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import Any

from anlam.errors import AnlamError
from anlam.io import SHIPPED_MODEL, atomic_path, output_folder, read_json_object, read_text_file, write_json
from anlam.models.base import DEFAULT_BASE_NAME, anlam_home, default_base_path, ensure_default_base

PathLike = Path | str

SHIPPED_NAME = "anlam-ml-tr-small"
DELTA_FORMAT = "anlam-delta/1"  # int8 rows + float32 scales for matrices, float16 for the rest
MAX_DELTA_BYTES = 25_000_000
SCALE_SUFFIX = ".__scale"
WEIGHTS = "model.safetensors"
TRAINING_MARKER = "anlam_training.json"  # anlam.train.MARKER (models/ does not import train)
BUILD_RECORD = "anlam_shipped.json"  # the delta's JSON, kept in the built folder: which delta built it


def weights_file() -> Path:
    """The delta inside the installed package (absent until a run has been packed into it)."""
    return Path(str(files("anlam.models").joinpath("weights").joinpath(f"{SHIPPED_NAME}.safetensors")))


def shipped_available() -> bool:
    """True when this install carries the tuned model's delta."""
    return weights_file().is_file()


def shipped_path() -> Path:
    """Folder of the rebuilt tuned model (it may not be built yet)."""
    return anlam_home() / "models" / SHIPPED_NAME


def info_file(delta_file: PathLike) -> Path:
    """The JSON that describes a delta file: same stem, ``.json``."""
    return Path(delta_file).with_suffix(".json")


def pack(run_dir: PathLike, out_file: PathLike, base: PathLike | None = None, report: dict | None = None,
         command: str | None = None) -> dict:
    """Write ``tuned - base`` of a finished training run to ``out_file`` (+ its JSON), and return the JSON.

    Args:
        run_dir: an ``anlam train`` output folder (``anlam_training.json`` marks it finished).
        out_file: the ``.safetensors`` delta to write; its JSON goes beside it.
        base: the folder the run was tuned from (default: the embedded base).
        report: evaluation to record (e.g. ``anlam eval``'s report.json), shown in the model card.
        command: the command that trained the run (default: the marker's ``command``, if any).

    Raises:
        AnlamError: an unfinished run, weights that do not match the base, or a delta over 25 MB.
    """
    run_dir, out_file = Path(run_dir), Path(out_file)
    if out_file.suffix != ".safetensors":
        raise AnlamError(f"{out_file}: the delta file must end in .safetensors")
    marker = _read_json(run_dir / TRAINING_MARKER, f"{run_dir}: no {TRAINING_MARKER} (not a finished training run)")
    base_dir = Path(base) if base is not None else ensure_default_base()
    base_file = _module_weights(base_dir)
    delta = _quantised_delta(_load(_module_weights(run_dir)), _load(base_file), run_dir, base_dir)
    if not delta:
        raise AnlamError(f"{run_dir}: its weights equal the base {base_dir}; there is nothing to ship")
    with atomic_path(out_file) as tmp:
        _save(delta, tmp, {"format": DELTA_FORMAT})
        size = tmp.stat().st_size
        if size > MAX_DELTA_BYTES:
            raise AnlamError(f"{out_file}: the delta would be {size / 1e6:.1f} MB, over the "
                             f"{MAX_DELTA_BYTES / 1e6:.0f} MB limit (train with frozen word embeddings)")
        delta_sha = _sha256(tmp)
    info = {
        "name": SHIPPED_NAME,
        "format": DELTA_FORMAT,
        "base_sha256": _sha256(base_file),
        "delta_sha256": delta_sha,
        "tensors": sum(not name.endswith(SCALE_SUFFIX) for name in delta),
        "bytes": size,
        "recipe": marker.get("recipe"),
        "command": command if command is not None else marker.get("command"),
        "commit": _git_commit(),
        "evaluation": report,
    }
    write_json(info_file(out_file), info)
    return info


def apply_delta(base_dir: PathLike, delta_file: PathLike, out_dir: PathLike) -> Path:
    """Write ``base_dir`` plus the delta in ``delta_file`` as a sentence-transformers folder ``out_dir``.

    Both checksums in the delta's JSON are verified first; the folder appears whole or not at all,
    replacing an earlier build there (anything else there is refused: ``anlam.io.output_folder``).

    Raises:
        AnlamError: a missing, damaged or unknown delta, a base other than the one it was packed on,
            or an ``out_dir`` that holds something else.
    """
    base_dir, delta_file, out_dir = Path(base_dir), Path(delta_file), Path(out_dir)
    info = read_info(delta_file)
    json_file = info_file(delta_file)
    _verify(delta_file, info["delta_sha256"], f"delta_sha256 in {json_file}: the file is damaged; reinstall anlam")
    base_file = _module_weights(base_dir)
    _verify(base_file, info["base_sha256"], f"base_sha256 in {json_file}: the delta was packed on another base; "
                                            "rebuild it with `anlam base build --rebuild`")
    state = _load(base_file)
    for name, change in _dequantised(_load(delta_file), delta_file).items():
        if name not in state or state[name].shape != change.shape:
            raise AnlamError(f"{delta_file}: tensor {name} {tuple(change.shape)} does not fit the base {base_dir}")
        state[name] = (state[name].float() + change).to(state[name].dtype)
    with output_folder(out_dir, SHIPPED_MODEL, overwrite=True, inputs=[base_dir, delta_file]) as tmp:
        shutil.copytree(base_dir, tmp, dirs_exist_ok=True, ignore=shutil.ignore_patterns("anlam_*.json"))
        _save(state, tmp / base_file.relative_to(base_dir), {"format": "pt"})
        _default_prompt_query(tmp / "config_sentence_transformers.json")
        (tmp / "README.md").write_text(model_card(info), encoding="utf-8")
        (tmp / BUILD_RECORD).write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return out_dir


def ensure_shipped(rebuild: bool = False) -> Path:
    """Return the tuned model's folder, rebuilding it from the base and the packaged delta when needed.

    A folder built from another delta (an older anlam) is rebuilt, so it always matches the install.

    Raises:
        AnlamError: this install has no delta, or the delta or base fails its checksum.
    """
    delta_file = weights_file()
    if not delta_file.is_file():
        raise AnlamError(f"{delta_file}: missing; this install carries no tuned model (use --model base)")
    path = shipped_path()
    if rebuild or not _built_from(path, read_info(delta_file)):
        print(f"anlam: building the built-in model {SHIPPED_NAME} into {path} (once, seconds)...", file=sys.stderr)
        apply_delta(ensure_default_base(), delta_file, path)
    return path


BUILTIN_MODELS: dict[str, Callable[..., Path]] = {
    DEFAULT_BASE_NAME: ensure_default_base,
    "base": ensure_default_base,
    SHIPPED_NAME: ensure_shipped,
}
DEFAULT_MODEL = SHIPPED_NAME if shipped_available() else DEFAULT_BASE_NAME


def builtin_models() -> list[dict]:
    """One record per built-in model (aliases left out): name, path, shipped, built, default, evaluation line."""
    info = read_info(weights_file()) if shipped_available() else None
    records = [
        {"name": DEFAULT_BASE_NAME, "path": str(default_base_path()), "shipped": True,
         "built": (default_base_path() / WEIGHTS).is_file(), "evaluation": None},
        {"name": SHIPPED_NAME, "path": str(shipped_path()), "shipped": info is not None,
         "built": info is not None and _built_from(shipped_path(), info),
         "evaluation": evaluation_summary(info.get("evaluation")) if info else None},
    ]
    return [record | {"default": record["name"] == DEFAULT_MODEL} for record in records]


def read_info(delta_file: PathLike) -> dict:
    """The JSON beside ``delta_file``, checked for the fields a rebuild needs."""
    json_file = info_file(delta_file)
    info = _read_json(json_file, f"{json_file}: missing (it must sit beside {Path(delta_file).name})")
    for field in ("name", "format", "base_sha256", "delta_sha256"):
        if not isinstance(info.get(field), str):
            raise AnlamError(f"{json_file}: field {field!r} is missing or not a string")
    if info["format"] != DELTA_FORMAT:
        raise AnlamError(f"{json_file}: format {info['format']!r} is not {DELTA_FORMAT!r}; upgrade anlam")
    return info


def model_card(info: dict) -> str:
    """README.md of the rebuilt model: what it is, how to call it, how it measured."""
    recipe = info.get("recipe")
    origin = f"preset `{recipe['preset']}`" if isinstance(recipe, dict) and "preset" in recipe else "anlam's recipe"
    commit = f", commit `{info['commit'][:12]}`" if info.get("commit") else ""
    command = f"\nTrained with `{info['command']}`.\n" if info.get("command") else ""
    return f"""---
language: [tr]
library_name: sentence-transformers
pipeline_tag: sentence-similarity
base_model: {DEFAULT_BASE_NAME}
tags: [sentence-transformers, sentence-similarity, feature-extraction, turkish, machine-learning, anlam]
---

# {info['name']}

anlam's built-in Turkish machine-learning sentence embeddings: the embedded base `{DEFAULT_BASE_NAME}`
fine-tuned with `anlam train` ({origin}{commit}), rebuilt on this machine from the base plus the
weight delta shipped in the anlam package.
{command}
```python
from sentence_transformers import SentenceTransformer
model = SentenceTransformer("PATH_TO_THIS_FOLDER")
vectors = model.encode(["Aşırı öğrenme nedir?", "GPU'lar eğitimi hızlandırır."])
```

`query` is the default prompt, so the plain call embeds sentences and questions as the model was
trained and evaluated; pass `prompt_name="passage"` for documents you index for search.

## Evaluation
{evaluation_markdown(info.get("evaluation"))}"""


def evaluation_markdown(evaluation: dict | None) -> str:
    """The recorded evaluation as a Markdown table (metrics as rows, models as columns)."""
    if not evaluation:
        return "_No evaluation was recorded when this delta was packed._\n"
    if isinstance(evaluation.get("markdown"), str):
        return evaluation["markdown"].rstrip() + "\n"
    columns = _metric_columns(evaluation)
    metrics = list(dict.fromkeys(key for values in columns.values() for key in values))
    lines = ["| metric | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for key in metrics:
        cells = [f"{values[key]:.4f}" if key in values else "–" for values in columns.values()]
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def evaluation_summary(evaluation: dict | None, count: int = 3) -> str | None:
    """One line for listings: the tuned model's headline metrics, with the change from the base when known."""
    if not evaluation:
        return None
    runs = list(_metric_columns(evaluation).values())
    if not runs:
        return None
    tuned, base = runs[-1], runs[0] if len(runs) > 1 else {}
    # one headline per yardstick when the report has them: bank STS, real-text retrieval, general STS
    headline = [next((k for k in tuned if _task_and_metric(k) == wanted), None)
                for wanted in (("ml-tr-sts", "spearman_cosine"), ("d2l-heading", "cosine_mrr@10"),
                               ("stsb-tr", "spearman_cosine"))]
    keys = [k for k in headline if k] or [k for k in tuned if k.endswith(("_spearman_cosine", "_cosine_mrr@10"))]
    keys = keys or list(tuned)
    parts = []
    for key in keys[:count]:
        change = f" ({tuned[key] - base[key]:+.3f})" if key in base else ""
        parts.append(f"{key} {tuned[key]:.3f}{change}")
    return ", ".join(parts) or None


def _task_and_metric(key: str) -> tuple[str, str]:
    """``"d2l-heading-test_cosine_mrr@10"`` -> ``("d2l-heading", "cosine_mrr@10")``: ``anlam eval``'s keys are
    ``{task}-{split}_{metric}``, so the split is the name's last part."""
    name, _, metric = key.partition("_")
    return name.rsplit("-", 1)[0], metric


def _metric_columns(evaluation: dict) -> dict[str, dict[str, float]]:
    """``{model: {metric: value}}`` from ``anlam eval``'s report (``metrics`` per model) or a flat metrics dict."""
    metrics = evaluation.get("metrics", evaluation)
    if not isinstance(metrics, dict):
        return {}
    if metrics and all(isinstance(v, dict) for v in metrics.values()):
        return {str(model): _numbers(values) for model, values in metrics.items()}
    return {SHIPPED_NAME: _numbers(metrics)}


def _numbers(values: dict) -> dict[str, float]:
    return {str(k): float(v) for k, v in values.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def _quantised_delta(tuned: dict, base: dict, run_dir: Path, base_dir: Path) -> dict:
    """``tuned - base`` for every floating tensor that changed; other tensors must be equal.

    The converted base has no pooler; transformers gives the tuned model a fresh one when it loads and
    saves it. Sentence-transformers pools the token states itself and never reads it, so it is left
    out (the rebuild gets a fresh one the same way); any other tensor only one side has is an error.
    """
    import torch

    extra = sorted(name for name in tuned.keys() ^ base.keys() if not name.startswith("pooler."))
    tuned = {name: value for name, value in tuned.items() if name in base}
    if extra:
        raise AnlamError(f"{run_dir}: weights do not match the base {base_dir} (tensor {extra[0]} is in only one)")
    out: dict[str, Any] = {}
    for name, value in tuned.items():
        if value.shape != base[name].shape:
            raise AnlamError(f"{run_dir}: tensor {name} has shape {tuple(value.shape)}, "
                             f"the base {base_dir} has {tuple(base[name].shape)}")
        if not value.is_floating_point():
            if not torch.equal(value, base[name]):
                raise AnlamError(f"{run_dir}: tensor {name} (not floating point) differs from the base {base_dir}")
            continue
        delta = value.float() - base[name].float()
        if torch.count_nonzero(delta):
            out |= _quantise(name, delta)
    return out


def _quantise(name: str, delta) -> dict:
    """int8 per output row with float32 scales for matrices (symmetric); float16 for vectors."""
    import torch

    if delta.ndim < 2:
        return {name: delta.half().contiguous()}
    rows = delta.reshape(delta.shape[0], -1)
    scale = rows.abs().amax(dim=1) / 127
    quantised = torch.round(rows / scale.clamp_min(torch.finfo(torch.float32).tiny)[:, None]).clamp(-127, 127)
    return {name: quantised.to(torch.int8).reshape(delta.shape).contiguous(), name + SCALE_SUFFIX: scale.contiguous()}


def _dequantised(delta: dict, delta_file: Path) -> dict:
    """Float32 changes from a loaded delta file, checked against the packing format."""
    import torch

    out = {}
    for name, value in delta.items():
        if name.endswith(SCALE_SUFFIX):
            if name.removesuffix(SCALE_SUFFIX) not in delta:
                raise AnlamError(f"{delta_file}: scale {name} has no tensor")
            continue
        if value.dtype == torch.float16:
            out[name] = value.float()
            continue
        scale = delta.get(name + SCALE_SUFFIX)
        if value.dtype != torch.int8 or scale is None or scale.dtype != torch.float32 or scale.shape != value.shape[:1]:
            raise AnlamError(f"{delta_file}: tensor {name} is not int8 with float32 row scales nor float16")
        out[name] = (value.reshape(value.shape[0], -1).float() * scale[:, None]).reshape(value.shape)
    return out


def _module_weights(folder: Path) -> Path:
    """``model.safetensors`` of the folder's first module (the transformer that fine-tuning changes)."""
    modules_file = folder / "modules.json"
    subfolder = ""
    if modules_file.is_file():
        try:
            subfolder = json.loads(read_text_file(modules_file))[0].get("path", "")
        except (ValueError, LookupError, AttributeError):
            raise AnlamError(f"{modules_file}: not a sentence-transformers module list") from None
    path = folder / subfolder / WEIGHTS
    if not path.is_file():
        raise AnlamError(f"{folder}: no {path.relative_to(folder)} (the first module's safetensors weights)")
    return path


def _load(path: Path) -> dict:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (OSError, SafetensorError) as exc:
        raise AnlamError(f"{path}: cannot read safetensors ({exc})") from None


def _save(tensors: dict, path: Path, metadata: dict[str, str]) -> None:
    from safetensors.torch import save_file

    save_file(tensors, str(path), metadata=metadata)


def _default_prompt_query(config_file: Path) -> None:
    """Make plain ``encode(texts)`` use the ``query`` prompt, as anlam trains and evaluates."""
    if not config_file.is_file():
        return  # no prompts defined, so no default prompt to name
    config = read_json_object(config_file)
    if "query" in (config.get("prompts") or {}):
        config["default_prompt_name"] = "query"
    config_file.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _built_from(path: Path, info: dict) -> bool:
    """True when ``path`` is a finished build of the delta that ``info`` describes."""
    try:
        record = json.loads((path / BUILD_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and record.get("delta_sha256") == info["delta_sha256"]


def _read_json(path: Path, missing: str) -> dict:
    if not path.is_file():
        raise AnlamError(missing)
    return read_json_object(path)


def _verify(path: Path, expected: str, source: str) -> None:
    if not path.is_file():
        raise AnlamError(f"{path}: missing")
    actual = _sha256(path)
    if actual != expected:
        raise AnlamError(f"{path}: sha256 {actual[:12]}... does not match {expected[:12]}... ({source})")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise AnlamError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    return digest.hexdigest()


def _git_commit() -> str | None:
    """The commit of the anlam checkout that packs, when it is one."""
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                              capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None
