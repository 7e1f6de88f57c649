"""``anlam export`` and ``anlam base prune-vocab`` on the tiny model.

Every exported folder must load back through ``Embedder`` (so encode / index / serve accept it)
and in its own runtime directly, and give the embeddings the torch model gives.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from anlam.cli import app
from anlam.errors import AnlamError
from anlam.export import export_model, prune_vocab
from anlam.models import Embedder
from anlam.models.manifest import LEGACY_MODULE_TYPES, MODULE_TYPE, read_manifest
from anlam.text import ascii_fold, tr_lower, tr_upper

TEXTS = [
    "Aşırı öğrenme, modelin eğitim verisini ezberleyip yeni verilerde kötü sonuç vermesidir.",
    "GPU'ların belleği büyük dil modellerine yetmiyor.",
    "ASIRI OGRENME NEDIR",
    "İstatistiksel öğrenmede düzenlileştirme ağırlıkları küçültür.",
]
CORPUS = TEXTS + [
    "Düzenlileştirme aşırı öğrenmeyi azaltır ve modelin genelleşmesini iyileştirir.",
    "Öğrenme oranı çok büyükse gradyan inişi ıraksayabilir.",
    "Karar ağaçları veriyi özniteliklere göre dallara ayırır.",
    "Çapraz doğrulama veriyi katlara böler ve her katı sırayla test için ayırır.",
    "Dikkat mekanizması her kelimenin diğer kelimelere ne kadar odaklanacağını öğrenir.",
    "Model eğitim verisini ezberlerse doğrulama hatası artar, eğitim hatası düşer.",
] * 2  # words must repeat to join the static vocabulary
UNSEEN = "Pekiştirmeli öğrenmede ajan, ödülü en büyük yapacak politikayı öğrenir."


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1)


@pytest.fixture(scope="module")
def pruned(tiny_model_path, tmp_path_factory) -> tuple[Path, dict]:
    """The tiny model pruned to the corpus's pieces: the source of the format tests (small files load fast)."""
    out = tmp_path_factory.mktemp("pruned") / "model"
    return out, prune_vocab(tiny_model_path, out, texts=CORPUS, check_texts=TEXTS + [UNSEEN])


@pytest.fixture(scope="module")
def small(pruned):
    return pruned[0]


@pytest.fixture(scope="module")
def small_embedder(small):
    return Embedder.from_pretrained(small, device="cpu")


@pytest.fixture(scope="module")
def exported(small, tmp_path_factory):
    """fmt -> exported folder of the pruned tiny model, built once per format on first use."""
    root = tmp_path_factory.mktemp("exports")
    cache: dict[str, Path] = {}

    def get(fmt: str) -> Path:
        if fmt not in cache:
            export_model(small, root / fmt, fmt, texts=CORPUS, calibration_size=8)
            cache[fmt] = root / fmt
        return cache[fmt]

    return get


def test_onnx_matches_torch_through_embedder(exported, small_embedder):
    folder = exported("onnx")
    manifest = read_manifest(folder)
    assert manifest["runtime"] == "onnxruntime" and manifest["inputs"][0] == "input_ids"
    embedder = Embedder.from_pretrained(folder)
    assert embedder.dim == small_embedder.dim
    assert embedder.max_tokens == small_embedder.max_tokens
    assert embedder.prompt_text("query") == "query: " and embedder.prompt_text("passage") == "passage: "
    for prompt in ("query", "passage", "none"):
        got = embedder.encode(TEXTS, prompt_name=prompt)
        assert _cosines(got, small_embedder.encode(TEXTS, prompt_name=prompt)).min() > 0.9999
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert embedder.encode(TEXTS, truncate_dim=16).shape == (len(TEXTS), 16)


def test_exports_from_before_the_runtime_moved_still_load(exported, small_embedder, tmp_path):
    """New exports name anlam.models.exported's class; a folder naming the old anlam.export.runtime loads the same."""
    folder = exported("onnx")
    assert json.loads((folder / "modules.json").read_text(encoding="utf-8"))[0]["type"] == MODULE_TYPE
    old = tmp_path / "old-export"
    shutil.copytree(folder, old)
    entries = json.loads((old / "modules.json").read_text(encoding="utf-8"))
    entries[0]["type"] = "anlam.export.runtime.ExportedTransformer"
    assert entries[0]["type"] in LEGACY_MODULE_TYPES
    (old / "modules.json").write_text(json.dumps(entries), encoding="utf-8")
    got = Embedder.from_pretrained(old).encode(TEXTS)
    assert _cosines(got, small_embedder.encode(TEXTS)).min() > 0.9999
    entries[0]["type"] = "anlam.export.elsewhere.ExportedTransformer"  # any other anlam name is refused
    (old / "modules.json").write_text(json.dumps(entries), encoding="utf-8")
    with pytest.raises(AnlamError, match="refusing to import module type 'anlam.export.elsewhere"):
        Embedder.from_pretrained(old)


@pytest.mark.parametrize("fmt", ["onnx-int8", "openvino-int8"])
def test_int8_stays_close_to_torch(exported, small_embedder, fmt):
    embedder = Embedder.from_pretrained(exported(fmt))
    got = embedder.encode(TEXTS)
    assert got.shape == (len(TEXTS), small_embedder.dim)
    assert _cosines(got, small_embedder.encode(TEXTS)).mean() > 0.97
    # a different sentence must still come out different: the graph is not constant
    assert _cosines(got[:1], embedder.encode([UNSEEN])).item() < 0.9999
    # a padded batch gives each row what the row alone gives
    alone = np.vstack([embedder.encode([text]) for text in TEXTS])
    assert _cosines(got, alone).min() > 0.999


def _mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    pooled = (hidden * mask[..., None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
    return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)


def test_onnx_folder_runs_in_onnxruntime_alone(exported):
    import onnxruntime as ort
    from transformers import AutoTokenizer

    folder = exported("onnx-int8")
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    batch = tokenizer(["query: " + t for t in TEXTS], padding=True, return_tensors="np")
    hidden = session.run(None, {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]})[0]
    direct = _mean_pool(hidden, batch["attention_mask"])
    assert _cosines(direct, Embedder.from_pretrained(folder).encode(TEXTS)).min() > 0.9999


def test_openvino_folder_runs_in_openvino_alone(exported):
    import openvino as ov
    from transformers import AutoTokenizer

    folder = exported("openvino-int8")
    compiled = ov.Core().compile_model(str(folder / "openvino_model.xml"), "CPU")
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    batch = tokenizer(["query: " + t for t in TEXTS], padding=True, return_tensors="np")
    hidden = compiled({"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]})[0]
    direct = _mean_pool(np.asarray(hidden), batch["attention_mask"])
    assert _cosines(direct, Embedder.from_pretrained(folder).encode(TEXTS)).min() > 0.999


def test_static_loads_in_model2vec_sentence_transformers_and_embedder(exported):
    from model2vec import StaticModel
    from sentence_transformers import SentenceTransformer

    folder = exported("static")
    manifest = read_manifest(folder)
    assert manifest["runtime"] == "model2vec" and manifest["words"] > 0
    vocab = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"]
    pieces = {p[0] if isinstance(p, list) else p for p in vocab}
    assert any("düzenlileştirme" in p for p in pieces)  # a repeated Turkish word got its own vector

    embedder = Embedder.from_pretrained(folder)
    assert embedder.prompt_text("query") == ""  # static vectors were distilled without prompts
    ours = embedder.encode(TEXTS + [UNSEEN], long="window")
    assert ours.shape == (len(TEXTS) + 1, manifest["dimension"])
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    plain = SentenceTransformer(str(folder), device="cpu").encode(TEXTS + [UNSEEN], normalize_embeddings=True)
    m2v = StaticModel.from_pretrained(folder).encode(TEXTS + [UNSEEN])
    assert _cosines(ours, plain).min() > 0.9999
    assert _cosines(ours, m2v / np.linalg.norm(m2v, axis=1, keepdims=True)).min() > 0.999


def test_prune_vocab_keeps_corpus_text_exact(pruned, tiny_model_path, tiny_embedder):
    from tokenizers import Tokenizer

    from anlam.export.vocab import used_piece_ids

    out, report = pruned
    assert report["pieces_after"] < report["pieces_before"] / 20
    assert report["params_after"] < report["params_before"] / 5
    assert report["bytes_after"] < report["bytes_before"] / 5
    assert report["check_texts"] == len(TEXTS) + 1
    assert json.loads((out / "anlam_prune.json").read_text(encoding="utf-8")) == report

    small = Embedder.from_pretrained(out, device="cpu")
    assert _cosines(small.encode(TEXTS), tiny_embedder.encode(TEXTS)).min() > 0.99999
    old = Tokenizer.from_file(str(tiny_model_path / "tokenizer.json"))
    new = Tokenizer.from_file(str(out / "tokenizer.json"))
    for text in CORPUS:  # corpus text tokenises exactly as before, also lower-cased, in capitals, without ğüşıöç
        for variant in (text, tr_lower(text), tr_upper(text), ascii_fold(text)):
            assert new.encode(variant).tokens == old.encode(variant).tokens
    assert "<unk>" not in new.encode(UNSEEN + " Ωμέγα, ∑ x² ≥ 0 £5").tokens  # letters and symbols survive
    # SentencePiece pieces never cross a space: scanning distinct words finds every piece sentences use
    by_sentence = {i for e in old.encode_batch(CORPUS, add_special_tokens=False) for i in e.ids}
    assert by_sentence <= used_piece_ids(old, CORPUS)


def test_export_refuses_bad_targets(exported, small, tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "notes.txt").write_text("önemli", encoding="utf-8")
    with pytest.raises(AnlamError, match="not an output of `anlam export`"):
        export_model(small, project, "onnx")
    assert (project / "notes.txt").exists()
    with pytest.raises(AnlamError, match="already an exported model"):
        export_model(exported("onnx"), tmp_path / "again", "onnx-int8")
    with pytest.raises(AnlamError, match="unknown export format"):
        export_model(small, tmp_path / "x", "tflite")


def test_cli_export_then_encode(small, tmp_path):
    runner = CliRunner()
    out = tmp_path / "cli-onnx"
    result = runner.invoke(app, ["export", str(small), "--format", "onnx", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["format"] == "onnx"
    result = runner.invoke(app, ["encode", "--model", str(out), "Aşırı öğrenme nedir?", "asiri ogrenme nedir"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert len(rows) == 2 and len(rows[0]) == 32
    shutil.rmtree(out)
    bad = runner.invoke(app, ["export", str(small), "--format", "tflite", "--out", str(out)])
    assert bad.exit_code == 2 and not out.exists()


def test_cli_prune_vocab_reports(small, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(TEXTS[:2]) + "\n", encoding="utf-8")
    check = tmp_path / "check.txt"
    check.write_text(UNSEEN + "\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["base", "prune-vocab", str(small), "--corpus", str(corpus),
                                      "--check", str(check), "--out", str(tmp_path / "p"), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["check_texts"] == 1 and 0 < report["pieces_after"] < report["pieces_before"]


@pytest.mark.slow
def test_real_base_onnx_int8_close_to_torch(base_model_path, base_embedder, tmp_path):
    out = tmp_path / "e5-int8"
    export_model(base_model_path, out, "onnx-int8")
    int8 = Embedder.from_pretrained(out)
    for prompt in ("query", "passage"):
        texts = TEXTS + [UNSEEN]
        cos = _cosines(int8.encode(texts, prompt_name=prompt), base_embedder.encode(texts, prompt_name=prompt))
        assert cos.mean() > 0.99 and cos.min() > 0.98


# -- the fast path: bucketed shapes ---------------------------------------------------------------


def test_openvino_batches_are_padded_to_few_shapes_without_changing_vectors(exported, monkeypatch):
    from anlam.models import exported as runtime

    embedder = Embedder.from_pretrained(exported("openvino-int8"))
    first = embedder.model[0]
    widths = {first.preprocess([t], prompt="query: ")["input_ids"].shape[1] for t in TEXTS + [UNSEEN]}
    assert widths and all(w % runtime.PAD_MULTIPLE == 0 for w in widths)
    assert first.preprocess([UNSEEN * 20])["input_ids"].shape[1] == first.max_seq_length  # never past the model's length
    bucketed = embedder.encode(TEXTS + [UNSEEN])
    monkeypatch.setattr(runtime, "PAD_MULTIPLE", 1)
    exact = embedder.encode(TEXTS + [UNSEEN])
    assert _cosines(bucketed, exact).min() > 0.9999
    # ONNX Runtime has no per-shape work: its batches keep their exact length
    onnx = Embedder.from_pretrained(exported("onnx")).model[0]
    lengths = {len(onnx.tokenizer("query: " + t)["input_ids"]) for t in TEXTS}
    assert {onnx.preprocess([t], prompt="query: ")["input_ids"].shape[1] for t in TEXTS} == lengths


def test_streams_run_batches_side_by_side_with_the_same_vectors(exported, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    from anlam.models import exported as runtime

    monkeypatch.setattr(runtime, "_runtime_streams", 1)  # restored after the test
    monkeypatch.setattr(runtime, "_runtime_threads", None)
    one = Embedder.from_pretrained(exported("openvino-int8"))
    expected = [one.encode(TEXTS[i::2]) for i in range(2)]
    runtime.set_runtime_threads(2, streams=2)
    for fmt in ("openvino-int8", "onnx-int8"):
        two = Embedder.from_pretrained(exported(fmt))
        assert (one.parallel_batches, two.parallel_batches) == (1, 2)
        with ThreadPoolExecutor(2) as pool:  # both threads tokenise and run at once, many times over
            rounds = [pool.submit(two.encode, TEXTS[i % 2::2], batch_size=2) for i in range(12)]
            results = [future.result(timeout=120) for future in rounds]
        reference = expected if fmt == "openvino-int8" else [two.encode(TEXTS[i::2]) for i in range(2)]
        for i, vectors in enumerate(results):
            assert _cosines(vectors, reference[i % 2]).min() > 0.9999


# -- the trust boundary: names in an export manifest --------------------------------------------


@pytest.mark.parametrize(("field", "name"), [
    ("file", "../model.onnx"), ("file", "/etc/passwd"), ("file", "alt/model.onnx"),
    ("extra_files", "../kacak.bin"), ("extra_files", "/tmp/kacak.bin"), ("extra_files", ".."),
])
def test_manifest_file_names_stay_inside_the_folder(exported, tmp_path, field, name):
    from anlam.models.exported import ExportedTransformer

    folder = tmp_path / "export"
    shutil.copytree(exported("onnx"), folder)
    (tmp_path / "model.onnx").write_bytes((folder / "model.onnx").read_bytes())  # what "../model.onnx" would read
    manifest = json.loads((folder / "anlam_export.json").read_text(encoding="utf-8"))
    manifest[field] = name if field == "file" else [name]
    (folder / "anlam_export.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(AnlamError, match=rf"{field} .* is not a plain file name inside the folder"):
        read_manifest(folder)
    with pytest.raises(AnlamError, match="not a plain file name"):
        Embedder.from_pretrained(folder)
    with pytest.raises(AnlamError, match="not a plain file name"):  # save() copies the named files out
        ExportedTransformer(folder)
    assert not (tmp_path / "kacak.bin").exists()


# -- fast by default: the int8 export a command runs ---------------------------------------------


def _quality(fp32: float, int8: float):
    """A quality check that records each model it saw; the export scores ``int8``, the float model ``fp32``."""
    seen = []

    def check(embedder) -> dict[str, float]:
        is_export = read_manifest(embedder.path) is not None
        seen.append("int8" if is_export else "fp32")
        # a real encode, so the export must load and run; the score itself is set by the test
        assert embedder.encode(["Aşırı öğrenme nedir?"]).shape == (1, embedder.dim)
        return {"ml-tr-retrieval-dev_cosine_mrr@10": int8 if is_export else fp32}

    check.seen = seen
    return check


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """An empty ANLAM_HOME: no export built yet."""
    monkeypatch.setenv("ANLAM_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture(scope="module")
def fast_home(tmp_path_factory, small) -> Path:
    """An ANLAM_HOME holding the accepted int8 export of ``small`` (built once for the tests below)."""
    from anlam.export.fast import resolve_weights

    folder = tmp_path_factory.mktemp("fast-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ANLAM_HOME", str(folder))
        check = _quality(0.800, 0.795)
        weights = resolve_weights(small, "auto", device="cpu", check=check)
    assert weights.precision == "int8" and check.seen == ["fp32", "int8"]
    return folder


@pytest.fixture
def fast(fast_home, monkeypatch) -> Path:
    monkeypatch.setenv("ANLAM_HOME", str(fast_home))
    from anlam.export import fast as fast_module

    def no_check(embedder):  # the export is built: a second quality check would be a bug
        raise AssertionError("the quality check ran again")

    monkeypatch.setattr(fast_module, "dev_quality", no_check)
    return fast_home


def test_int8_export_is_built_once_checked_and_reused(fast, small, small_embedder):
    from anlam.export.fast import FAST_FORMAT, resolve_weights
    from anlam.models import model_checksum

    weights = resolve_weights(small, "auto", device="cpu")  # a cache hit: no check, no export
    checksum = model_checksum(small)
    assert weights.precision == "int8" and weights.export == FAST_FORMAT and weights.checksum == checksum
    assert Path(weights.path) == fast / "exports" / f"{checksum[:16]}-{FAST_FORMAT}"
    manifest = read_manifest(weights.path)
    assert manifest["source"] == {"path": str(Path(small).resolve()), "checksum": checksum}
    quality = manifest["quality"]
    assert quality["accepted"] and quality["loss"] == {"ml-tr-retrieval-dev_cosine_mrr@10": 0.005}
    assert quality["fp32"]["ml-tr-retrieval-dev_cosine_mrr@10"] == 0.8
    int8 = Embedder.from_pretrained(weights.path)
    assert _cosines(int8.encode(TEXTS), small_embedder.encode(TEXTS)).mean() > 0.97
    assert resolve_weights(small, "int8", device="cpu") == weights
    assert not list((fast / "exports").glob(".*building"))  # nothing half-built left behind


def test_fp32_opts_out_and_a_gpu_keeps_float_weights(home, small):
    from anlam.export.fast import resolve_weights

    check = _quality(0.8, 0.8)
    for precision, device in (("fp32", "cpu"), ("auto", "cuda")):
        weights = resolve_weights(small, precision, device=device, check=check)
        assert (weights.path, weights.precision, weights.export) == (str(small), "fp32", None)
    assert check.seen == [] and not any((home / "exports").glob("*-openvino-int8"))
    with pytest.raises(AnlamError, match="CPU only"):
        resolve_weights(small, "int8", device="cuda", check=check)
    with pytest.raises(AnlamError, match="unknown precision"):
        resolve_weights(small, "int4")


def test_an_export_that_loses_quality_is_refused_and_float_weights_are_used(home, small, caplog):
    from anlam.export.fast import resolve_weights

    check = _quality(0.80, 0.78)  # loses 0.02 > 0.01
    with caplog.at_level("WARNING", logger="anlam.export.fast"):
        weights = resolve_weights(small, "auto", device="cpu", check=check)
    assert weights.precision == "fp32" and weights.path == str(small)
    assert "refused" in caplog.text and "using the float weights" in caplog.text
    assert "0.8000 -> 0.7800" in caplog.text
    built = next((home / "exports").glob("*-openvino-int8"))
    assert read_manifest(built)["quality"]["accepted"] is False  # the verdict is kept: no rebuild next time
    caplog.clear()
    with caplog.at_level("WARNING", logger="anlam.export.fast"):
        forced = resolve_weights(small, "int8", device="cpu", check=check)
    assert forced.precision == "int8" and Path(forced.path) == built and "although it loses" in caplog.text
    assert check.seen == ["fp32", "int8"]  # checked once, when built


def test_a_model_that_cannot_be_exported_runs_float_and_is_not_retried(exported, home, tmp_path, caplog):
    from anlam.export.fast import resolve_weights

    plain = tmp_path / "statik"  # a sentence-transformers folder whose first module is not a transformer
    shutil.copytree(exported("static"), plain)
    (plain / "anlam_export.json").unlink()
    check = _quality(0.8, 0.8)
    with caplog.at_level("WARNING", logger="anlam.export.fast"):
        assert resolve_weights(plain, "auto", device="cpu", check=check).precision == "fp32"
    assert "only transformer text encoders" in caplog.text and "using the float weights" in caplog.text
    failed = next((home / "exports").glob("*.failed.json"))
    caplog.clear()
    with caplog.at_level("WARNING", logger="anlam.export.fast"):
        assert resolve_weights(plain, "auto", device="cpu", check=check).precision == "fp32"
    assert "first use" not in caplog.text  # the failure is remembered, not tried again
    with pytest.raises(AnlamError, match=f"delete {failed}"):
        resolve_weights(plain, "int8", device="cpu", check=check)
    assert check.seen == []


def test_checksum_follows_the_weights_not_the_model_card(small, tmp_path, home):
    """One checksum keys both the int8 export and the paraphrase calibration of a model."""
    from anlam.apps.paraphrase import Calibration, stored_calibration
    from anlam.models import model_checksum

    copy = tmp_path / "kopya"
    shutil.copytree(small, copy)
    before = model_checksum(copy)
    assert model_checksum(copy) == before == model_checksum(small)
    (copy / "README.md").write_text("# Başka bir model kartı\n", encoding="utf-8")
    (copy / "anlam_calibration.json").write_text("{}", encoding="utf-8")
    assert model_checksum(copy) == before
    config = json.loads((copy / "config_sentence_transformers.json").read_text(encoding="utf-8"))
    config["prompts"]["query"] = "soru: "
    (copy / "config_sentence_transformers.json").write_text(json.dumps(config), encoding="utf-8")
    assert model_checksum(copy) != before
    pooling = next(p for p in copy.iterdir() if p.name.endswith("_Pooling"))
    changed = model_checksum(copy)
    (pooling / "config.json").write_text((pooling / "config.json").read_text(encoding="utf-8") + " ", encoding="utf-8")
    assert model_checksum(copy) != changed  # a module folder's files count too
    assert (home / "cache" / "checksums.json").is_file()  # file digests are remembered between processes
    (copy / "anlam_calibration.json").unlink()
    cache = tmp_path / "calibrations"
    cache.mkdir()
    calibration = Calibration(weight=20.0, bias=-10.0, threshold=0.5, prompt="query")
    (cache / f"{model_checksum(copy)}.json").write_text(json.dumps(calibration.to_dict()), encoding="utf-8")
    assert stored_calibration(copy, cache) == calibration


DOCS = [
    ("d1", "Aşırı öğrenme, modelin eğitim verisini ezberleyip yeni verilerde başarısız olmasıdır."),
    ("d2", "GPU'lar büyük dil modellerinin eğitimini hızlandırır."),
    ("d3", "Düzenlileştirme ağırlıkları küçültür ve aşırı öğrenmeyi azaltır."),
]


def test_index_records_its_weights_and_searches_with_them(fast, small, tmp_path):
    from anlam.data import Document
    from anlam.search import Index

    docs = [Document(i, t) for i, t in DOCS]
    Index.build(docs, tmp_path / "int8", model=small, precision="auto")
    Index.build(docs, tmp_path / "fp32", model=small, precision="fp32")
    for name, precision, export in (("int8", "int8", "openvino-int8"), ("fp32", "fp32", None)):
        index = Index.load(tmp_path / name)
        recorded = index.manifest["model"]
        assert (recorded["precision"], recorded["export"]) == (precision, export)
        assert recorded["path"] == str(Path(small).resolve()) and len(recorded["checksum"]) == 64
        assert index.info()["precision"] == precision
        hits = index.search("asiri ogrenme nedir", k=2, mode="dense")
        assert len(hits) == 2  # the recorded weights load and pass the index's probe check
        assert (read_manifest(index.embedder.path) is not None) == (precision == "int8")
        # an explicit --model gets the index's precision too
        assert Index.load(tmp_path / name, model=str(small)).embedder.path == index.embedder.path


def test_cli_index_build_and_encode_default_to_int8(cli, fast, small, tmp_path, monkeypatch):
    docs = tmp_path / "belgeler.jsonl"
    docs.write_text("".join(json.dumps({"id": i, "text": t}, ensure_ascii=False) + "\n" for i, t in DOCS),
                    encoding="utf-8")
    monkeypatch.delenv("ANLAM_PRECISION", raising=False)
    result = cli("index", "build", docs, "--out", tmp_path / "ix", "--model", small, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["precision"] == "int8"
    result = cli("index", "build", docs, "--out", tmp_path / "ix32", "--model", small, "--precision", "fp32", "--json")
    assert json.loads(result.stdout)["precision"] == "fp32"
    monkeypatch.setenv("ANLAM_PRECISION", "fp32")
    result = cli("index", "build", docs, "--out", tmp_path / "ix-env", "--model", small, "--json")
    assert json.loads(result.stdout)["precision"] == "fp32"
    search = cli("search", tmp_path / "ix", "aşırı öğrenme", "--mode", "dense", "--json", "-k", "1")
    assert search.returncode == 0, search.stderr
    rows = {p: [json.loads(line) for line in
                cli("encode", "--model", small, "--precision", p, *TEXTS[:2]).stdout.splitlines()]
            for p in ("fp32", "int8")}
    assert len(rows["int8"]) == 2 and rows["int8"] != rows["fp32"]
    assert _cosines(np.array(rows["int8"]), np.array(rows["fp32"])).min() > 0.95


def test_cli_serve_runs_the_int8_export_under_its_models_name(cli, fast, small, monkeypatch):
    import anlam.serve

    from anlam.models import exported as runtime

    calls = {}
    monkeypatch.setattr(anlam.serve, "run_server", lambda app, **kw: calls.update(app=app, **kw))
    monkeypatch.delenv("ANLAM_PRECISION", raising=False)
    monkeypatch.setattr(runtime, "_runtime_streams", 1)  # the command sets them; restored after the test
    monkeypatch.setattr(runtime, "_runtime_threads", None)
    threads = [torch.get_num_threads()]  # the command's count, not this test process's
    monkeypatch.setattr(torch, "set_num_threads", threads.append)
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads[-1])
    for args, exported_weights, workers in (((), True, 2), (("--precision", "fp32"), False, 1),
                                            (("--threads", "1"), True, 1), (("--workers", "3"), True, 3)):
        result = cli("serve", "--model", small, "--no-paraphrase", "--threads", "2", *args)
        assert result.returncode == 0, result.stderr
        service = calls["app"].state.service
        assert (read_manifest(service.embedder.path) is not None) == exported_weights
        assert service.batcher.workers == workers  # int8: a batch per thread unless told; torch: one
        assert service.model_id == Path(small).name
