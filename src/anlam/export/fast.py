"""Fast by default: the int8 export a command runs in place of its float model, where that is safe.

``anlam index build`` and ``anlam serve`` run on the CPU, where the OpenVINO int8 export of a model
embeds about three times faster than its float weights. ``resolve_weights`` decides which weights a
command loads:

- ``fp32``: the model folder itself (torch);
- ``int8``: its int8 export, built on first use into ``$ANLAM_HOME/exports/<checksum>-openvino-int8``
  (the checksum of the model's files, so a retrained folder gets a new export) and reused after;
- ``auto``: int8 when the export passed its quality check, on a CPU; the float model otherwise.

The quality check runs once, when the export is built: the float model and the export on three dev
sets of the evaluation (bank question -> definition MRR@10, d2l-tr heading -> section MRR@10,
STSb-TR Spearman). The export is accepted only if it loses at most ``MAX_QUALITY_LOSS`` on each;
the figures and the verdict are recorded in its manifest (``quality``). Its int8 ranges are
calibrated on train splits only, so the dev sets are text it has not seen.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from anlam.errors import AnlamError
from anlam.io import write_json
from anlam.models.checksum import model_checksum
from anlam.models.manifest import MANIFEST, read_manifest, runtime_settings

if TYPE_CHECKING:
    from anlam.models import EmbedderLike

logger = logging.getLogger(__name__)

PathLike = Path | str
PRECISIONS = ("auto", "int8", "fp32")
FAST_FORMAT = "openvino-int8"
MAX_QUALITY_LOSS = 0.01
QualityCheck = Callable[[object], dict[str, float]]  # Embedder -> metric name -> value (higher is better)


@dataclass(frozen=True)
class Weights:
    """The weights a command runs.

    Attributes:
        path: the folder to load (the model itself, or its export).
        source: the model folder (or built-in model, hub id) the weights come from.
        precision: "fp32", "int8", or an export's own kind ("static").
        export: the export format, ``None`` for the model's own (torch) weights.
        checksum: sha256 of the source model's files (``model_checksum``), ``None`` when not a local folder.
    """

    path: str
    source: str
    precision: str
    export: str | None = None
    checksum: str | None = None

    def record(self) -> dict:
        """What an index manifest keeps, so its queries use these weights again."""
        return {"precision": self.precision, "export": self.export, "checksum": self.checksum}


def exports_dir() -> Path:
    """Where int8 exports built on first use live: ``$ANLAM_HOME/exports``."""
    from anlam.models.base import anlam_home

    return anlam_home() / "exports"


def export_precision(fmt: str) -> str:
    """The precision an export format runs at: "int8", "fp32" (onnx) or "static"."""
    return "int8" if fmt.endswith("-int8") else "static" if fmt == "static" else "fp32"


def resolve_weights(model: PathLike | None = None, precision: str = "auto", device: str | None = None,
                    check: QualityCheck | None = None) -> Weights:
    """Which weights to load for ``model`` at ``precision`` (see the module docstring).

    Args:
        model: a model folder, built-in name, hub id, or an exported folder (used as it is).
        precision: "auto", "int8" or "fp32".
        device: the device asked for; "auto" keeps float weights on anything but the CPU.
        check: the quality check for a first build (default: ``dev_quality``).

    Raises:
        AnlamError: an unknown precision; "int8" for a model that cannot be exported, a device other
            than the CPU, or a precision an exported folder does not have.
    """
    from anlam.models.embedder import pick_device, resolve_model_path

    if precision not in PRECISIONS:
        raise AnlamError(f"unknown precision {precision!r} (choose from {', '.join(PRECISIONS)})")
    path = resolve_model_path(model)
    local = Path(path).is_dir()
    manifest = read_manifest(path) if local else None
    if manifest is not None:  # an export given directly: it is what it is
        own = export_precision(manifest.get("format", ""))
        if precision not in ("auto", own):
            logger.warning("%s is an %s export: it runs as it is (%s); --precision %s applies to an original "
                           "model folder", path, manifest.get("format"), own, precision)
        return Weights(path, path, own, manifest.get("format"), manifest.get("source", {}).get("checksum"))
    checksum = model_checksum(path) if local else None
    floats = Weights(path, path, "fp32", None, checksum)
    if precision == "fp32":
        return floats
    on_cpu = (device or pick_device()).split(":")[0] == "cpu"
    runtime = all(importlib.util.find_spec(name) is not None for name in ("openvino", "nncf"))
    if precision == "auto" and not (local and on_cpu and runtime):
        return floats
    if not runtime:
        raise AnlamError("--precision int8 needs OpenVINO and NNCF: pip install 'anlam[export]'")
    if not local:
        raise AnlamError(f"{path}: --precision int8 needs a local model folder (it is exported once into "
                         f"{exports_dir()})")
    if not on_cpu:
        raise AnlamError(f"int8 weights run on the CPU only, not on --device {device}; use --precision fp32")
    try:
        folder, built = ensure_int8(path, check=check)
    except AnlamError as exc:
        if precision == "int8":
            raise
        logger.warning("%s; using the float weights", exc)
        return floats
    quality = built["quality"]
    if not quality["accepted"]:
        if precision == "auto":
            logger.warning("the int8 export of %s loses more than %.2f on a dev set (%s); using the float weights "
                           "(--precision int8 uses it anyway)", path, MAX_QUALITY_LOSS, _losses(quality))
            return floats
        logger.warning("using the int8 export of %s although it loses more than %.2f on a dev set (%s)",
                       path, MAX_QUALITY_LOSS, _losses(quality))
    return Weights(str(folder), path, "int8", FAST_FORMAT, checksum)


def weights_of(embedder: EmbedderLike) -> Weights:
    """The weights a loaded ``Embedder`` runs: an export's precision, else its own (fp32)."""
    path = str(embedder.path)
    manifest = read_manifest(path) if Path(path).is_dir() else None
    if manifest is None:
        return Weights(path, path, "fp32")
    return Weights(path, path, export_precision(manifest.get("format", "")), manifest.get("format"),
                   manifest.get("source", {}).get("checksum"))


def ensure_int8(model: PathLike, check: QualityCheck | None = None, calibration_size: int = 300) -> tuple[Path, dict]:
    """The int8 export of the model folder ``model``, built and quality-checked on first use.

    Returns:
        The export folder and its manifest (with ``source`` and ``quality``).

    Raises:
        AnlamError: the model cannot be exported (kept in ``<folder>.failed.json``, so later commands
            do not try again; delete that file to retry).
    """
    from anlam.export import export_model
    from anlam.models import Embedder

    source = Path(model).resolve()
    checksum = model_checksum(source)
    folder = exports_dir() / f"{checksum[:16]}-{FAST_FORMAT}"
    built = _complete(folder, checksum)
    if built is not None:
        return folder, built
    failed = folder.with_name(f"{folder.name}.failed.json")
    if failed.is_file():
        try:
            reason = json.loads(failed.read_text(encoding="utf-8"))["error"]
        except (OSError, ValueError, KeyError, TypeError):
            reason = "an earlier attempt failed"
        raise AnlamError(f"{source}: no int8 export ({reason}; delete {failed} to try again)")
    folder.parent.mkdir(parents=True, exist_ok=True)
    with _lock(folder.parent / f".{folder.name}.lock"):
        built = _complete(folder, checksum)  # another process may have built it while we waited
        if built is not None:
            return folder, built
        logger.warning("first use of int8 weights for %s: exporting to %s and checking its quality on the dev sets "
                       "(once; a few minutes)", source, folder)
        staging = folder.with_name(f".{folder.name}.building")
        shutil.rmtree(staging, ignore_errors=True)
        try:
            try:
                manifest = export_model(source, staging, FAST_FORMAT, calibration_size=calibration_size)  # train texts
            except AnlamError as exc:  # this model cannot be exported: say so once, not on every command
                write_json(failed, {"source": str(source), "checksum": checksum, "error": str(exc)})
                raise
            check = check or dev_quality
            floats = check(Embedder.from_pretrained(source, device="cpu"))
            int8 = check(Embedder.from_pretrained(staging))
            manifest["source"] = {"path": str(source), "checksum": checksum}
            manifest["quality"] = quality_verdict(floats, int8)
            write_json(staging / MANIFEST, manifest)
            shutil.rmtree(folder, ignore_errors=True)  # an incomplete earlier attempt
            os.replace(staging, folder)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    quality = manifest["quality"]
    logger.warning("int8 export %s: %s", "accepted" if quality["accepted"] else "refused", _losses(quality))
    return folder, manifest


def quality_verdict(floats: dict[str, float], int8: dict[str, float], max_loss: float = MAX_QUALITY_LOSS) -> dict:
    """Both models' metrics, the loss on each, and whether none loses more than ``max_loss``."""
    loss = {name: round(floats[name] - int8[name], 4) for name in floats}
    return {"split": "dev", "fp32": floats, "int8": {name: int8[name] for name in floats}, "loss": loss,
            "max_loss": max_loss, "accepted": all(value <= max_loss for value in loss.values()),
            "runtime": runtime_settings(), "checked": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def dev_quality(embedder) -> dict[str, float]:
    """The cheap dev check: bank question -> definition MRR@10, d2l-tr heading -> section MRR@10, STSb-TR Spearman.

    The evaluation's own figures on its dev splits (``anlam.evaluate.spot_check``, under the keys
    ``anlam eval --split dev`` reports them); about 4,000 texts.
    """
    from anlam.evaluate import spot_check

    return {key: round(value, 4) for key, value in spot_check(embedder, "dev").items()}


def _complete(folder: Path, checksum: str) -> dict | None:
    """The export's manifest when it is complete, made from this checksum and checked under today's runtime
    settings (``runtime_settings``: a verdict measured under other settings is stale), else ``None``."""
    try:
        manifest = read_manifest(folder) if folder.is_dir() else None
    except AnlamError:
        return None
    if not manifest or manifest.get("source", {}).get("checksum") != checksum:
        return None
    if manifest.get("quality", {}).get("runtime") != json.loads(json.dumps(runtime_settings())):
        return None
    return manifest


def _losses(quality: dict) -> str:
    return ", ".join(f"{name} {quality['fp32'][name]:.4f} -> {quality['int8'][name]:.4f}" for name in quality["fp32"])


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    """One builder at a time (a server and an index build starting together build the export once)."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks
        yield
        return
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


__all__ = ["FAST_FORMAT", "MAX_QUALITY_LOSS", "PRECISIONS", "Weights", "dev_quality", "ensure_int8", "export_precision",
           "exports_dir", "quality_verdict", "resolve_weights", "weights_of"]
