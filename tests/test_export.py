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
from typer.testing import CliRunner

from anlam.cli import app
from anlam.errors import AnlamError
from anlam.export import export_model, prune_vocab, read_manifest
from anlam.models import Embedder
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
    for prompt in ("query", "passage", None):
        got = embedder.encode(TEXTS, prompt=prompt)
        assert _cosines(got, small_embedder.encode(TEXTS, prompt=prompt)).min() > 0.9999
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert embedder.encode(TEXTS, dim=16).shape == (len(TEXTS), 16)


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
    with pytest.raises(AnlamError, match="not a model folder"):
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
        cos = _cosines(int8.encode(texts, prompt=prompt), base_embedder.encode(texts, prompt=prompt))
        assert cos.mean() > 0.99 and cos.min() > 0.98
