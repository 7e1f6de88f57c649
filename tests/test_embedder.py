"""Embedder and the foundation commands (encode, similarity) on the tiny model."""

import json
import shutil
import warnings
from types import SimpleNamespace

import numpy as np
import pytest

from anlam.errors import AnlamError
from anlam.models import Embedder, EmbedderLike

TR = ["Aşırı öğrenme nedir?", "GPU'lar eğitimi hızlandırır.", "IŞIK HIZI", "asiri ogrenme nedir"]


def test_encode_shapes_and_norms(tiny_embedder):
    vectors = tiny_embedder.encode(TR)
    assert vectors.shape == (4, 32)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_prompt_changes_embedding_and_unknown_prompt_is_an_error(tiny_embedder):
    q = tiny_embedder.encode(TR[:1], prompt_name="query")
    p = tiny_embedder.encode(TR[:1], prompt_name="passage")
    n = tiny_embedder.encode(TR[:1], prompt_name="none")
    assert not np.allclose(q, p) and not np.allclose(q, n)
    for none in (None, "", "none"):  # None: the model's default prompt, and the tiny model sets none
        assert tiny_embedder.prompt_text(none) == ""
    assert np.allclose(n, tiny_embedder.encode(TR[:1], prompt=""))  # sentence-transformers' "no prefix"
    with pytest.raises(AnlamError, match="no prompt named 'soru'; this model defines 'query', 'passage'"):
        tiny_embedder.encode(TR[:1], prompt_name="soru")


def _anlam_warnings(record) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, DeprecationWarning)
            and str(w.message).startswith("Embedder:")]


def test_keywords_mean_what_they_mean_in_sentence_transformers(tiny_embedder):
    """prompt_name names a prompt, prompt is the literal prefix, truncate_dim truncates: ST's own results."""
    st = tiny_embedder.model
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        for name in ("query", "passage"):
            want = st.encode(TR, prompt_name=name, normalize_embeddings=True)
            np.testing.assert_allclose(tiny_embedder.encode(TR, prompt_name=name), want, atol=1e-5)
        literal = tiny_embedder.encode(TR, prompt="soru: ")  # any prefix, not only the model's prompts
        np.testing.assert_allclose(literal, st.encode(TR, prompt="soru: ", normalize_embeddings=True), atol=1e-5)
        np.testing.assert_allclose(literal, tiny_embedder.encode(["soru: " + t for t in TR], prompt=""), atol=1e-5)
        assert not np.allclose(literal, tiny_embedder.encode(TR, prompt_name="query"), atol=1e-3)
        # prompt wins over prompt_name, as in sentence-transformers
        np.testing.assert_allclose(tiny_embedder.encode(TR, prompt_name="passage", prompt="query: "),
                                   tiny_embedder.encode(TR, prompt_name="query"), atol=1e-6)
        short = tiny_embedder.encode(TR, truncate_dim=8)
        full = st.encode(TR, prompt_name="query", truncate_dim=8)
        np.testing.assert_allclose(short, full / np.linalg.norm(full, axis=1, keepdims=True), atol=1e-5)
        assert tiny_embedder.prompt_text(prompt="soru: ") == "soru: "
        assert tiny_embedder.token_counts(TR, prompt="query: ") == tiny_embedder.token_counts(TR, "query")
    assert _anlam_warnings(record) == []


def test_prompt_name_none_is_the_models_default_prompt():
    model = SimpleNamespace(prompts={"query": "q: ", "passage": "p: "}, default_prompt_name="query")
    assert Embedder(model, "model-x").prompt_text(None) == "q: "
    assert Embedder(model, "model-x").prompt_text("none") == ""


def test_old_keywords_warn_and_embed_the_same(tiny_embedder):
    """anlam 0.1's prompt=NAME, prompt=None and dim= still work for one release, with a DeprecationWarning."""
    cases = [
        (dict(prompt="query"), dict(prompt_name="query")),
        (dict(prompt="passage"), dict(prompt_name="passage")),
        (dict(prompt="none"), dict(prompt_name="none")),
        (dict(prompt=None), dict(prompt="")),
        (dict(dim=8), dict(truncate_dim=8)),
        (dict(prompt="passage", dim=8), dict(prompt_name="passage", truncate_dim=8)),
    ]
    for old, new in cases:
        with pytest.warns(DeprecationWarning, match=r"^Embedder: .* is deprecated") as record:
            got = tiny_embedder.encode(TR, **old)
        assert all(w.filename == __file__ for w in record if str(w.message).startswith("Embedder:")), old
        np.testing.assert_array_equal(got, tiny_embedder.encode(TR, **new))
    ids = [tiny_embedder.tokenizer(t, add_special_tokens=False)["input_ids"] for t in TR]
    with pytest.warns(DeprecationWarning) as record:
        got = tiny_embedder.encode_ids(ids, prompt="passage", dim=8)
    assert [m.split(" is deprecated")[0] for m in _anlam_warnings(record)] == [
        "Embedder: dim=", "Embedder: prompt='passage' (a prompt name)"]
    assert "use truncate_dim=" in _anlam_warnings(record)[0] and "use prompt_name='passage'" in _anlam_warnings(record)[1]
    np.testing.assert_array_equal(got, tiny_embedder.encode_ids(ids, "passage", truncate_dim=8))
    for method, args in (("token_counts", (TR,)), ("model_input_ids", (ids,)), ("prompt_text", ())):
        with pytest.warns(DeprecationWarning, match="prompt_name='passage'"):
            old = getattr(tiny_embedder, method)(*args, prompt="passage")
        assert old == getattr(tiny_embedder, method)(*args, prompt_name="passage")


def test_embedder_is_embedder_like(tiny_embedder):
    assert isinstance(tiny_embedder, EmbedderLike)


@pytest.mark.parametrize("prompts, name, expected", [
    ({}, "bilinmeyen", ""),  # a model without prompts: every name means no prefix
    ({"query": None, "document": ""}, "query", ""),  # what sentence-transformers fills in is no prompt
    ({"query": "q: "}, "passage", ""),  # query-only (asymmetric) models read passages bare
    ({"query": "q: ", "document": "d: "}, "passage", "d: "),  # sentence-transformers' other name for it
    ({"query": "", "document": "", "search_query": "sq: "}, "query", None),  # defines prompts, not this one: an error
])
def test_prompt_names_across_models(prompts, name, expected):
    embedder = Embedder(SimpleNamespace(prompts=prompts), "model-x")
    if expected is None:
        with pytest.raises(AnlamError, match="model-x: no prompt named 'query'; this model defines 'search_query'"):
            embedder.prompt_text(name)
    else:
        assert embedder.prompt_text(name) == expected


def test_cli_prompt_none_still_works(cli, tiny_model_path, tiny_embedder):
    result = cli("encode", "--model", str(tiny_model_path), "--prompt", "none", TR[0])
    assert result.returncode == 0, result.stderr
    got = np.array(json.loads(result.stdout.splitlines()[0]), dtype=np.float32)
    np.testing.assert_allclose(got, tiny_embedder.encode(TR[:1], prompt="")[0], atol=1e-5)


def test_truncate_dim_truncates_and_renormalises(tiny_embedder):
    full = tiny_embedder.encode(TR)
    short = tiny_embedder.encode(TR, truncate_dim=8)
    assert short.shape == (4, 8)
    expected = full[:, :8] / np.linalg.norm(full[:, :8], axis=1, keepdims=True)
    assert np.allclose(short, expected, atol=1e-5)
    with pytest.raises(AnlamError, match=r"truncate_dim \(--dim\) must be between 1 and 32, got 999"):
        tiny_embedder.encode(TR, truncate_dim=999)


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
        (b'{"text": "tamam"}\n{"metin": "x"}\n', [], "<stdin>: line 2: no field 'text' (fields: metin)"),
        (b"\xff\xfe bozuk\n", ["--plain"], "line 1: invalid UTF-8"),
        (b'{"text": "   "}\n', [], "<stdin>: line 1: empty text in field 'text'"),
        (b"", ["   "], "text 1: empty text"),  # an argument is checked by the embedder
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


# -- token ids -------------------------------------------------------------------------------------


def test_token_ids_embed_like_their_text(tiny_embedder):
    tokenizer = tiny_embedder.tokenizer
    bare = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in TR]
    full = [tokenizer(t)["input_ids"] for t in TR]  # with <s> ... </s>: not doubled
    for prompt in ("query", "passage", "none"):
        texts = tiny_embedder.encode(TR, prompt_name=prompt)
        for ids in (bare, full):
            np.testing.assert_allclose(tiny_embedder.encode_ids(ids, prompt_name=prompt), texts, atol=1e-5)
        assert [len(r) for r in tiny_embedder.model_input_ids(bare, prompt)] == tiny_embedder.token_counts(TR, prompt)
    literal = tiny_embedder.encode(TR, prompt="soru: ")
    np.testing.assert_allclose(tiny_embedder.encode_ids(bare, prompt="soru: "), literal, atol=1e-5)
    assert tiny_embedder.encode_ids(bare, truncate_dim=8).shape == (4, 8)


def test_token_ids_out_of_vocabulary_or_empty(tiny_embedder):
    with pytest.raises(AnlamError, match=r"text 2, token 3: id 250002 is not in the vocabulary \(0 to 250001\)"):
        tiny_embedder.encode_ids([[5, 6], [5, 6, 250002]])
    with pytest.raises(AnlamError, match="text 1: no token ids"):
        tiny_embedder.encode_ids([[0, 2]])  # nothing between <s> and </s>


def test_long_token_ids_are_cut_like_long_text(tiny_embedder, caplog):
    long_text = " ".join(["Derin öğrenme modelleri büyük veri ister."] * 60)
    ids = tiny_embedder.tokenizer(long_text, add_special_tokens=False)["input_ids"]
    with caplog.at_level("WARNING"):
        got = tiny_embedder.encode_ids([ids])
    assert "truncated" in caplog.text
    np.testing.assert_allclose(got, tiny_embedder.encode([long_text]), atol=1e-5)


# -- loading ---------------------------------------------------------------------------------------


def test_weights_that_do_not_fit_the_model_are_an_error(tiny_model_path, tmp_path):
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "yanlis"
    shutil.copytree(tiny_model_path, folder)
    weights = load_file(folder / "model.safetensors")
    save_file({f"encoder_v2.{k}": v for k, v in weights.items()}, folder / "model.safetensors")
    with pytest.raises(AnlamError, match=rf"{folder}: its weights do not cover the model \(\d+ of \d+ tensors missing, "
                                         r"e\.g\. embeddings\..*its files hold instead encoder_v2\."):
        Embedder.from_pretrained(folder, device="cpu")


def test_a_folder_saved_by_sentence_transformers_loads_without_a_pooler(tiny_model_path, tmp_path):
    """`anlam train` saves through sentence-transformers, which drops the base's ``add_pooling_layer: false``:
    transformers then builds a pooler no file covers, and mean pooling never reads it."""
    from safetensors.torch import load_file, save_file

    saved = tmp_path / "egitilmis"
    shutil.copytree(tiny_model_path, saved)
    weights = load_file(saved / "model.safetensors")
    save_file({k: v for k, v in weights.items() if not k.startswith("pooler.")}, saved / "model.safetensors")
    model = Embedder.from_pretrained(saved, device="cpu")
    assert any(name.startswith("pooler.") for name, _ in model.model[0].auto_model.named_parameters())
    reference = Embedder.from_pretrained(tiny_model_path, device="cpu")
    sentence = ["Öğrenme oranı çok büyükse kayıp ıraksar."]
    np.testing.assert_allclose(model.encode(sentence), reference.encode(sentence), atol=1e-6)


def test_cli_names_a_folder_with_wrong_weights(cli, tiny_model_path, tmp_path):
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "yanlis"
    shutil.copytree(tiny_model_path, folder)
    weights = load_file(folder / "model.safetensors")
    save_file({k: v for k, v in weights.items() if not k.startswith("encoder.layer.1.")}, folder / "model.safetensors")
    result = cli("encode", "--model", str(folder), "merhaba")
    assert result.returncode == 2 and "its weights do not cover the model" in result.stderr
    assert "encoder.layer.1." in result.stderr and not result.stdout


def test_loading_leaves_logging_and_warnings_alone(tiny_model_path):
    import warnings

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_warning()
    hf_logging.enable_progress_bar()
    filters = list(warnings.filters)
    Embedder.from_pretrained(tiny_model_path, device="cpu")
    assert hf_logging.get_verbosity() == hf_logging.WARNING
    assert hf_logging.is_progress_bar_enabled()
    assert warnings.filters == filters


@pytest.fixture(scope="module")
def onnx_folder(tiny_model_path, tmp_path_factory):
    from anlam.export import export_model

    out = tmp_path_factory.mktemp("onnx") / "model"
    export_model(tiny_model_path, out, "onnx")
    return out


def test_exported_folder_refuses_another_device(onnx_folder, cli):
    with pytest.raises(AnlamError, match=f"{onnx_folder}: an exported model runs on the CPU only, not on --device cuda"):
        Embedder.from_pretrained(onnx_folder, device="cuda")
    assert Embedder.from_pretrained(onnx_folder, device="cpu").dim == 32
    result = cli("serve", "--model", onnx_folder, "--device", "cuda:0")
    assert result.returncode == 2 and "runs on the CPU only, not on --device cuda:0" in result.stderr


def test_exported_folder_takes_token_ids(onnx_folder, tiny_embedder):
    embedder = Embedder.from_pretrained(onnx_folder, device="cpu")
    assert embedder.takes_token_ids
    ids = [embedder.tokenizer(t, add_special_tokens=False)["input_ids"] for t in TR]
    got = embedder.encode_ids(ids, prompt_name="query")
    assert ((got * tiny_embedder.encode(TR, prompt_name="query")).sum(axis=1) > 0.9999).all()
