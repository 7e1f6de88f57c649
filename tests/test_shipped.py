"""The built-in tuned model as a delta on the base: pack, rebuild, checksums, names (on the tiny model)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from anlam.errors import AnlamError
from anlam.models import shipped
from anlam.models.embedder import resolve_model_path

SENTENCES = [
    "Aşırı öğrenme nedir?", "GPU'lar eğitimi hızlandırır.", "İstatistiksel öğrenme kuramı",
    "Işık hızı sabittir.", "Öğrenme oranı çok büyükse kayıp ıraksar.", "Dropout nöronları rastgele kapatır.",
    "Çapraz doğrulama nasıl yapılır?", "Gradyan inişi yerel minimuma takılabilir.",
    "Düzenlileştirme ağırlıkları küçültür.", "Şekil tanıma için CNN kullanılır.",
    "Ürün önerileri gömme vektörleriyle yapılır.", "ÇOK KATMANLI ALGILAYICI", "asiri ogrenme nasil onlenir",
    "Karar ağaçları bölünme ölçütü seçer.", "Yığın normalleştirme eğitimi kararlı kılar.",
    "Dikkat mekanizması ağırlık dağıtır.", "K-ortalamalar kümelemesi 3 küme buldu.",
    "Özellik ölçekleme neden önemlidir?", "Modeli ONNX'e dışa aktardık.", "Bellek yetmezse batch'i küçült.",
]


@pytest.fixture(scope="module")
def tuned_path(tiny_model_path, tmp_path_factory):
    """The tiny model with noise on every non-embedding tensor, marked as a finished training run."""
    import torch
    from safetensors.torch import load_file, save_file

    out = tmp_path_factory.mktemp("tuned") / "run"
    shutil.copytree(tiny_model_path, out)
    state = load_file(str(out / "model.safetensors"))
    generator = torch.Generator().manual_seed(1)
    for name, value in state.items():
        if value.is_floating_point() and not name.startswith("embeddings."):
            state[name] = value + 0.1 * torch.randn(value.shape, generator=generator)
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    marker = {"recipe": {"preset": "quick", "lr": 2e-5}, "steps": 1, "command": "anlam train --preset quick"}
    (out / "anlam_training.json").write_text(json.dumps(marker), encoding="utf-8")
    return out


REPORT = {"models": ["base", "tuned"], "metrics": {
    "base": {"ml-tr-sts-test_spearman_cosine": 0.403, "stsb-tr-test_spearman_cosine": 0.768},
    "tuned": {"ml-tr-sts-test_spearman_cosine": 0.711, "stsb-tr-test_spearman_cosine": 0.791}}}


@pytest.fixture(scope="module")
def delta_file(tuned_path, tiny_model_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("delta") / "anlam-ml-tr-small.safetensors"
    shipped.pack(tuned_path, out, base=tiny_model_path, report=REPORT)
    return out


@pytest.fixture(scope="module")
def rebuilt_path(delta_file, tiny_model_path, tmp_path_factory):
    return shipped.apply_delta(tiny_model_path, delta_file, tmp_path_factory.mktemp("rebuilt") / "model")


def _copy_delta(delta_file, folder):
    """The delta and its JSON in ``folder``, to damage one without touching the shared copy."""
    for path in (delta_file, shipped.info_file(delta_file)):
        shutil.copy(path, folder / path.name)
    return folder / delta_file.name


def test_pack_records_what_it_shipped(delta_file, tiny_model_path):
    from safetensors.torch import load_file

    info = json.loads(shipped.info_file(delta_file).read_text(encoding="utf-8"))
    tensors = load_file(str(delta_file))
    assert info["name"] == "anlam-ml-tr-small"
    assert info["base_sha256"] == shipped._sha256(tiny_model_path / "model.safetensors")
    assert info["delta_sha256"] == shipped._sha256(delta_file)
    assert info["bytes"] == delta_file.stat().st_size
    assert info["recipe"]["preset"] == "quick" and info["command"] == "anlam train --preset quick"
    assert info["evaluation"] == REPORT
    assert not any(name.startswith("embeddings.") for name in tensors)  # unchanged: left out
    assert info["tensors"] == sum(not name.endswith(".__scale") for name in tensors)
    for name, value in tensors.items():
        if name.endswith(".__scale"):
            assert str(value.dtype) == "torch.float32"
        elif value.ndim == 2:
            assert str(value.dtype) == "torch.int8" and tensors[name + ".__scale"].shape == value.shape[:1]
        else:
            assert str(value.dtype) == "torch.float16"


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_rebuilt_model_matches_tuned(tiny_model_path, tuned_path, rebuilt_path):
    from sentence_transformers import SentenceTransformer

    base = SentenceTransformer(str(tiny_model_path), device="cpu").encode(SENTENCES, prompt_name="query")
    tuned = SentenceTransformer(str(tuned_path), device="cpu").encode(SENTENCES, prompt_name="query")
    rebuilt_model = SentenceTransformer(str(rebuilt_path), device="cpu")
    rebuilt = rebuilt_model.encode(SENTENCES, prompt_name="query")
    assert _cosines(base, tuned).mean() < 0.9  # the delta carries a real change...
    assert _cosines(tuned, rebuilt).min() >= 0.999  # ...and int8/float16 keep it
    np.testing.assert_allclose(rebuilt_model.encode(SENTENCES), rebuilt, atol=1e-6)  # query is the default prompt
    card = (rebuilt_path / "README.md").read_text(encoding="utf-8")
    assert "SentenceTransformer(" in card and "| ml-tr-sts-test_spearman_cosine | 0.4030 | 0.7110 |" in card
    assert not (rebuilt_path / "anlam_training.json").exists()


def test_corrupt_delta_names_the_file(delta_file, tiny_model_path, tmp_path):
    damaged = _copy_delta(delta_file, tmp_path)
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    with pytest.raises(AnlamError, match=f"{damaged}.*damaged"):
        shipped.apply_delta(tiny_model_path, damaged, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_missing_json_names_it(delta_file, tiny_model_path, tmp_path):
    lonely = tmp_path / delta_file.name
    shutil.copy(delta_file, lonely)
    with pytest.raises(AnlamError, match="anlam-ml-tr-small.json: missing"):
        shipped.apply_delta(tiny_model_path, lonely, tmp_path / "out")


def test_other_base_is_refused(delta_file, tuned_path, tmp_path):
    with pytest.raises(AnlamError, match="base_sha256.*another base"):
        shipped.apply_delta(tuned_path, delta_file, tmp_path / "out")


def test_pack_refuses_unfinished_run(tiny_model_path, tmp_path):
    with pytest.raises(AnlamError, match="anlam_training.json"):
        shipped.pack(tiny_model_path, tmp_path / "d.safetensors", base=tiny_model_path)


def test_pack_refuses_oversized_delta(tuned_path, tiny_model_path, tmp_path, monkeypatch):
    monkeypatch.setattr(shipped, "MAX_DELTA_BYTES", 1000)
    with pytest.raises(AnlamError, match=r"d.safetensors: the delta would be \d+\.\d MB"):
        shipped.pack(tuned_path, tmp_path / "d.safetensors", base=tiny_model_path)
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def packaged(delta_file, tiny_model_path, tmp_path, monkeypatch):
    """The delta as if it were the package's, the tiny model as the base, and an empty ANLAM_HOME."""
    monkeypatch.setenv("ANLAM_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(shipped, "weights_file", lambda: delta_file)
    monkeypatch.setattr(shipped, "ensure_default_base", lambda rebuild=False: tiny_model_path)
    for name in ("base", "e5-small"):
        monkeypatch.setitem(shipped.BUILTIN_MODELS, name, lambda rebuild=False: tiny_model_path)
    monkeypatch.setattr(shipped, "DEFAULT_MODEL", "anlam-ml-tr-small")
    return tmp_path / "home" / "models" / "anlam-ml-tr-small"


def test_names_resolve_to_builtin_models(packaged, tiny_model_path, tmp_path, monkeypatch, capsys):
    assert resolve_model_path("anlam-ml-tr-small") == str(packaged)
    assert "building the built-in model" in capsys.readouterr().err
    assert resolve_model_path(None) == str(packaged)
    assert capsys.readouterr().err == ""  # built once
    assert resolve_model_path("base") == str(tiny_model_path)
    monkeypatch.chdir(tmp_path)
    local = tmp_path / "base"
    shutil.copytree(tiny_model_path, local)
    assert resolve_model_path("base") == "base"  # a local folder of that name wins


def test_missing_package_delta(packaged, tmp_path, monkeypatch):
    monkeypatch.setattr(shipped, "weights_file", lambda: tmp_path / "gone.safetensors")
    with pytest.raises(AnlamError, match="gone.safetensors: missing"):
        shipped.ensure_shipped()


def test_cli_pack_and_models(cli, packaged, tuned_path, tiny_model_path, tmp_path):
    report = tmp_path / "report.json"
    report.write_text(json.dumps(REPORT), encoding="utf-8")
    out = tmp_path / "cli.safetensors"
    result = cli("base", "pack", tuned_path, "--out", out, "--base", tiny_model_path, "--report", report)
    assert result.returncode == 0, result.stderr
    assert "MB" in result.stdout and "tensors" in result.stdout and out.is_file()
    result = cli("models", "--json")
    records = {r["name"]: r for r in map(json.loads, result.stdout.splitlines())}
    tuned = records["anlam-ml-tr-small"]
    assert tuned["default"] and tuned["shipped"] and not tuned["built"]
    assert tuned["evaluation"].startswith("ml-tr-sts-test_spearman_cosine 0.711 (+0.308)")
    assert cli("base", "pack", tiny_model_path, "--out", out).returncode == 2
    report.write_text("{not json", encoding="utf-8")
    result = cli("base", "pack", tuned_path, "--out", out, "--base", tiny_model_path, "--report", report)
    assert result.returncode == 2 and f"{report}: line 1: not JSON" in result.stderr


@pytest.mark.slow
def test_shipped_model_rebuilds_to_the_trained_folder(base_model_path):
    """The real delta in the package, applied to the real base, gives the trained folder's vectors back.

    The reference vectors were written from the trained folder (runs/quick-m0.25) when it was packed.
    """
    import json

    from sentence_transformers import SentenceTransformer

    from anlam.models import Embedder, ensure_shipped

    reference = json.loads((Path(__file__).parent / "data" / "shipped_reference.json").read_text(encoding="utf-8"))
    folder = ensure_shipped()
    tuned = Embedder.from_pretrained(folder, device="cpu")
    base = Embedder.from_pretrained(base_model_path, device="cpu")
    for prompt in ("query", "passage"):
        want = np.array(reference[prompt])
        got = tuned.encode(reference["texts"], prompt_name=prompt)
        assert (got * want).sum(axis=1).min() >= 0.999, prompt
        # and it is not the base
        assert (base.encode(reference["texts"], prompt_name=prompt) * want).sum(axis=1).min() < 0.999, prompt
    plain = SentenceTransformer(str(folder), device="cpu").encode(reference["texts"])
    np.testing.assert_allclose(plain, np.array(reference["query"]), atol=1e-4)


@pytest.mark.slow
def test_builtin_models_come_with_their_calibration(base_model_path, monkeypatch):
    """Both built-in folders hash to a packaged calibration, so no first use spends minutes fitting one."""
    from anlam.apps import paraphrase
    from anlam.models import Embedder, ensure_shipped, model_checksum

    def no_fitting(*args, **kwargs):
        raise AssertionError("calibrated although a packaged calibration should have been found")

    monkeypatch.setattr(paraphrase, "calibrate", no_fitting)
    for folder in (base_model_path, ensure_shipped()):
        assert (paraphrase.SHIPPED_CALIBRATIONS / f"{model_checksum(folder)}.json").is_file(), folder
        calibration = paraphrase.default_calibration(Embedder.from_pretrained(folder, device="cpu"))
        assert calibration.source == "ML-TR dev" and 0.0 < calibration.cosine_threshold < 1.0
    assert not (base_model_path / paraphrase.CALIBRATION_FILE).exists()
