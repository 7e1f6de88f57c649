"""Embedder and the foundation commands (encode, similarity) on the tiny model."""

import json

import numpy as np
import pytest

from anlam.errors import AnlamError
from anlam.models import Embedder

TR = ["Aşırı öğrenme nedir?", "GPU'lar eğitimi hızlandırır.", "IŞIK HIZI", "asiri ogrenme nedir"]


def test_encode_shapes_and_norms(tiny_embedder):
    vectors = tiny_embedder.encode(TR)
    assert vectors.shape == (4, 32)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_prompt_changes_embedding_and_unknown_prompt_is_empty(tiny_embedder):
    q = tiny_embedder.encode(TR[:1], prompt="query")
    p = tiny_embedder.encode(TR[:1], prompt="passage")
    n = tiny_embedder.encode(TR[:1], prompt=None)
    assert not np.allclose(q, p)
    assert tiny_embedder.prompt_text("bilinmeyen") == ""
    assert np.allclose(n, tiny_embedder.encode(TR[:1], prompt="bilinmeyen"))


def test_dim_truncates_and_renormalises(tiny_embedder):
    full = tiny_embedder.encode(TR)
    short = tiny_embedder.encode(TR, dim=8)
    assert short.shape == (4, 8)
    expected = full[:, :8] / np.linalg.norm(full[:, :8], axis=1, keepdims=True)
    assert np.allclose(short, expected, atol=1e-5)
    with pytest.raises(AnlamError, match="--dim"):
        tiny_embedder.encode(TR, dim=999)


def test_nfc_before_tokenising(tiny_embedder):
    composed = tiny_embedder.encode(["İstanbul'da"])
    decomposed = tiny_embedder.encode(["I\u0307stanbul'da"])
    assert np.allclose(composed, decomposed, atol=1e-6)


def test_empty_text_names_its_position(tiny_embedder):
    with pytest.raises(AnlamError, match="text 2: empty"):
        tiny_embedder.encode(["dolu", "   "])


def test_long_text_warns_or_windows(tiny_embedder, caplog):
    long_text = " ".join(["Derin öğrenme modelleri büyük veri ister."] * 60)
    assert tiny_embedder.token_counts([long_text])[0] > tiny_embedder.max_tokens
    with caplog.at_level("WARNING"):
        truncated = tiny_embedder.encode([long_text])
    assert "longer than" in caplog.text
    windowed = tiny_embedder.encode([long_text], long="window")
    assert windowed.shape == truncated.shape
    assert np.isclose(np.linalg.norm(windowed), 1.0, atol=1e-5)
    assert not np.allclose(windowed, truncated)


def test_not_a_model_folder(tmp_path):
    with pytest.raises(AnlamError, match="not a model folder"):
        Embedder.from_pretrained(tmp_path)
    with pytest.raises(AnlamError, match="does not exist"):
        Embedder.from_pretrained(tmp_path / "yok")


def test_cli_encode_jsonl_roundtrip(cli, tiny_model_path):
    lines = "\n".join(json.dumps({"text": t}, ensure_ascii=False) for t in TR).encode()
    result = cli("encode", "--model", str(tiny_model_path), stdin=lines)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 4 and len(rows[0]) == 32


def test_cli_encode_to_npy_and_parquet(cli, tiny_model_path, tmp_path):
    npy = tmp_path / "v.npy"
    result = cli("encode", "--model", str(tiny_model_path), "--out", str(npy), "--dim", "16", *TR)
    assert result.returncode == 0, result.stderr
    assert np.load(npy).shape == (4, 16)
    parquet = tmp_path / "v.parquet"
    result = cli("encode", "--model", str(tiny_model_path), "--plain", "--out", str(parquet), stdin="\n".join(TR).encode())
    assert result.returncode == 0, result.stderr
    import pyarrow.parquet as pq

    assert pq.read_table(parquet).column("text").to_pylist() == TR


@pytest.mark.parametrize(
    "stdin, args, message",
    [
        (b'{"text": "tamam"}\nbu json degil\n', [], "<stdin>: line 2: not JSON"),
        (b'{"text": "tamam"}\n{"metin": "x"}\n', [], 'line 2: expected an object with a string "text"'),
        (b"\xff\xfe bozuk\n", ["--plain"], "line 1: invalid UTF-8"),
        (b'{"text": "   "}\n', [], "text 1: empty text"),
    ],
)
def test_cli_encode_bad_input(cli, tiny_model_path, tmp_path, stdin, args, message):
    out = tmp_path / "v.npy"
    result = cli("encode", "--model", str(tiny_model_path), "--out", str(out), *args, stdin=stdin)
    assert result.returncode == 2
    assert message in result.stderr
    assert not out.exists() and not list(tmp_path.iterdir())


def test_cli_bad_model_folder(cli, tmp_path):
    result = cli("encode", "--model", str(tmp_path), "merhaba")
    assert result.returncode == 2
    assert f"{tmp_path}: not a model folder" in result.stderr


def test_cli_similarity_json(cli, tiny_model_path):
    result = cli("similarity", "--model", str(tiny_model_path), "--json", *TR[:3])
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    matrix = np.array(data["matrix"])
    assert matrix.shape == (3, 3) and np.allclose(np.diag(matrix), 1.0, atol=1e-3)
    assert data["texts"] == TR[:3]
