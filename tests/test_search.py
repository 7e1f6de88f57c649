"""Search: documents, chunking, BM25 with Turkish folding, fusion, letter restoration, the Index."""

from __future__ import annotations

import hashlib
import json
import logging
import re

import numpy as np
import pytest

from anlam.data import Document, read_documents
from anlam.errors import AnlamError
from anlam.search import Chunker, Index
from anlam.search.chunking import sections, split_sentences
from anlam.search.hybrid import Fusion, fuse, fuse_pairs
from anlam.search.index import PROBE, dense_query, parse_filters
from anlam.search.letters import Letters
from anlam.search.lexical import Lexical, terms
from anlam.text import ascii_fold, tokens, tr_upper

CORPUS = {
    "asiri": "Aşırı öğrenme, modelin eğitim verisini ezberleyip yeni verilerde başarısız olmasıdır.",
    "gradyan": "Gradyan inişi, kayıp fonksiyonunu küçültmek için parametreleri gradyanın tersi yönünde günceller.",
    "gpu": "GPU'ların belleği büyük modellerin eğitiminde çoğu zaman darboğaz olur.",
    "kume": "Kümeleme, etiketsiz verileri benzerliklerine göre gruplara ayırır.",
    "capraz": "Çapraz doğrulama, veriyi katlara bölerek genelleme başarısını tahmin eder.",
    "dikkat": "Dikkat mekanizması, dizideki her öğenin diğer öğelere ne kadar odaklanacağını öğrenir.",
}


class HashEmbedder:
    """Fast deterministic stand-in for a model: a sum of per-word random vectors (by folded 5-letter prefix)."""

    dim = 64
    max_tokens = 512

    def __init__(self, salt: str = "") -> None:
        self.salt = salt
        self.path = f"hash-embedder{salt}"
        self._words: dict[str, np.ndarray] = {}

    def prompt_text(self, name):
        return ""

    def _word(self, word: str) -> np.ndarray:
        if word not in self._words:
            seed = hashlib.blake2b((self.salt + word).encode(), digest_size=8).digest()
            self._words[word] = np.random.default_rng(int.from_bytes(seed, "little")).standard_normal(self.dim)
        return self._words[word]

    def encode(self, texts, prompt_name=None, batch_size=32, show_progress=False, **_):
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in ascii_fold(" ".join(tokens(text))).split():
                out[i] += self._word(word[:5])
            out[i] += 1e-3 * self._word(text)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def docs(**extra) -> list[Document]:
    return [Document(id=key, text=text, metadata={"konu": "derin" if key in ("dikkat", "gpu") else "klasik", **extra})
            for key, text in CORPUS.items()]


@pytest.fixture
def hash_index(tmp_path):
    return Index.build(docs(), tmp_path / "ix", HashEmbedder())


# -- chunking ----------------------------------------------------------------------------------


def test_sentences_respect_turkish_abbreviations_and_numbers():
    text = "Örn. Dr. Ayşe bunu 3.5 saatte yaptı. Sonra vb. işler geldi! Neden? Çünkü öyle."
    assert split_sentences(text) == ["Örn. Dr. Ayşe bunu 3.5 saatte yaptı.", "Sonra vb. işler geldi!", "Neden?", "Çünkü öyle."]


def test_sections_follow_heading_paths_and_skip_code_fences():
    text = "# Kılavuz\nGiriş.\n## Kurulum\nAdım bir.\n```\n# yorum, başlık değil\n```\n### Ayrıntı\nSon."
    assert [(h, b.strip()) for h, b in sections(text)] == [
        ("Kılavuz", "Giriş."),
        ("Kılavuz > Kurulum", "Adım bir.\n```\n# yorum, başlık değil\n```"),
        ("Kılavuz > Kurulum > Ayrıntı", "Son."),
    ]


def test_chunker_packs_sentences_with_overlap_and_keeps_document_fields():
    sentences = [f"Cümle {i} " + " ".join(["kelime"] * 8) + "." for i in range(10)]  # 10 words each
    doc = Document("d1", "# Başlık\n" + " ".join(sentences), title="Belge", metadata={"dil": "tr"}, source="a.md")
    passages = Chunker(max_words=25, overlap=1).split(doc)
    assert [p.position for p in passages] == list(range(len(passages)))
    assert all(len(p.text.split()) <= 25 for p in passages)
    for before, after in zip(passages, passages[1:]):
        assert split_sentences(before.text)[-1] == split_sentences(after.text)[0]  # one sentence of overlap
    covered = {s for p in passages for s in split_sentences(p.text)}
    assert covered == set(sentences)
    assert {(p.doc_id, p.title, p.heading, p.source) for p in passages} == {("d1", "Belge", "Başlık", "a.md")}
    assert passages[0].metadata == {"dil": "tr"} and passages[0].context.startswith("Belge > Başlık\n")
    with pytest.raises(AnlamError, match="at least 8 words"):
        Chunker(max_words=3)


def test_chunker_cuts_an_overlong_sentence():
    doc = Document("d", " ".join(["uzun"] * 50))
    assert [len(p.text.split()) for p in Chunker(max_words=20, overlap=0).split(doc)] == [20, 20, 10]


# -- documents ---------------------------------------------------------------------------------


def test_read_documents_in_every_format(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "not.txt").write_text("Kümeleme etiketsiz veriyle çalışır.", encoding="utf-8")
    (tmp_path / "rehber.md").write_text("# Optimizasyon Rehberi\n\nGradyan inişi.", encoding="utf-8")
    (tmp_path / "sss.jsonl").write_text(
        json.dumps({"id": 7, "title": "Dikkat", "text": "Dikkat mekanizması.", "konu": "derin", "yil": 2017}, ensure_ascii=False)
        + "\n\n" + json.dumps({"text": "Kimliksiz belge."}, ensure_ascii=False) + "\n", encoding="utf-8")
    (tmp_path / "ek.csv").write_text('id,text,konu\nc1,"Çapraz doğrulama, katlar.",klasik\n', encoding="utf-8")
    pq.write_table(pa.table({"text": ["Karar ağacı."], "seviye": [2]}), tmp_path / "tablo.parquet")
    found = {d.id: d for d in read_documents([tmp_path])}
    assert set(found) == {f"{tmp_path.as_posix()}/not.txt", f"{tmp_path.as_posix()}/rehber.md", "7", "sss.jsonl:3",
                          "c1", "tablo.parquet:1"}
    assert found[f"{tmp_path.as_posix()}/rehber.md"].title == "Optimizasyon Rehberi"
    assert found["7"].title == "Dikkat" and found["7"].metadata == {"konu": "derin", "yil": 2017}
    assert found["c1"].metadata == {"konu": "klasik"} and found["tablo.parquet:1"].metadata == {"seviye": 2}


def test_invalid_utf8_is_skipped_with_a_warning_or_fails_with_strict(tmp_path, caplog):
    good = tmp_path / "iyi.txt"
    good.write_text("Düzgün bir belge.", encoding="utf-8")
    bad = tmp_path / "bozuk.txt"
    bad.write_bytes("Birinci satır\n".encode() + b"bozuk \xff bayt")
    lines = tmp_path / "satirlar.jsonl"
    lines.write_bytes(b'{"id": "a", "text": "tamam"}\n{"id": "b", "text": "bozuk \xff"}\n')
    with caplog.at_level(logging.WARNING):
        found = read_documents([good, bad, lines])
    assert [d.id for d in found] == [good.as_posix(), "a"]
    assert f"{bad}: line 2: invalid UTF-8" in caplog.text and f"{lines}: line 2: invalid UTF-8" in caplog.text
    with pytest.raises(AnlamError, match="bozuk.txt: line 2: invalid UTF-8"):
        read_documents([good, bad], strict=True)


@pytest.mark.parametrize("name, content, message", [
    ("yok.txt", None, "no such file or folder"),
    ("belge.docx", b"x", "unsupported document type"),
    ("a.csv", "id,metin\n1,x\n".encode(), "no column 'text' (columns: id, metin)"),
    ("a.jsonl", b'{"text": "bir"}\nbozuk\n', "line 2: not JSON"),
    ("a.jsonl", b'{"id": "x", "text": "bir"}\n{"id": "x", "text": "iki"}\n', "duplicate document id 'x'"),
])
def test_bad_documents_name_the_file(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(AnlamError, match=re.escape(message)) as error:
        read_documents([path])
    assert str(path) in str(error.value)


# -- lexical, fusion, letters ------------------------------------------------------------------


def test_terms_match_across_case_and_missing_turkish_letters():
    assert terms("AŞIRI ÖĞRENME") == terms("asiri ogrenme") == terms("Aşırı öğrenme") == terms("ASIRI OGRENME")
    assert terms("ÖĞRENME ORANI") == terms("ogrenme orani") == terms("öğrenme oranı")
    assert terms("İSTATİSTİK") == terms("istatistik")  # "İ" -> "i", not "i" + a combining dot
    assert set(terms("GPU'ların belleği")) >= set(terms("GPU"))  # the suffix after the apostrophe goes
    assert "nedir" not in " ".join(terms("Aşırı öğrenme nedir?"))


def test_bm25_scores_a_query_the_same_however_it_is_typed():
    texts = [*CORPUS.values(), "Öğrenme oranı, gradyan adımının büyüklüğünü belirler.",
             "GPU ile eğitim hızlanır."]
    lexical = Lexical.build((i, " ".join(terms(t))) for i, t in enumerate(texts))
    for query in ("öğrenme oranı nasıl seçilir", "aşırı öğrenme", "GPU'ların belleği"):
        expected = lexical.search(query, 5)
        assert expected[0].size
        for typed in (ascii_fold(query), tr_upper(query), ascii_fold(tr_upper(query))):
            found = lexical.search(typed, 5)
            assert found[0].tolist() == expected[0].tolist() and np.allclose(found[1], expected[1]), typed
    assert texts[lexical.search("ogrenme orani", 1)[0][0]].startswith("Öğrenme oranı")
    assert texts[lexical.search("AŞIRI ÖĞRENME", 1)[0][0]] == CORPUS["asiri"]
    assert set(lexical.search("GPU", 5)[0].tolist()) == {2, 7}  # "GPU'ların" and "GPU"


def test_bm25_finds_passages_from_capitals_and_ascii_queries():
    ids = list(range(len(CORPUS)))
    lexical = Lexical.build((i, " ".join(terms(t))) for i, t in zip(ids, CORPUS.values()))
    keys = list(CORPUS)
    for query, expected in [("ASIRI OGRENME nedir", "asiri"), ("asiri ogrenme", "asiri"), ("gpu bellegi", "gpu"),
                            ("ÇAPRAZ DOĞRULAMA", "capraz"), ("kumeleme", "kume")]:
        found, scores = lexical.search(query, 3)
        assert keys[found[0]] == expected, query
        assert list(scores) == sorted(scores, reverse=True)
    found, _ = lexical.search("aşırı öğrenme", 3, allowed=np.array([1, 2]))
    assert set(found.tolist()) <= {1, 2}
    assert lexical.search("hiçbir eşleşme yok zzz", 3)[0].size == 0


def test_rrf_fuses_ranks_with_weights_and_depth():
    dense = np.array([[0.9, 0.8, 0.7, np.nan]])
    bm25 = np.array([[2.0, np.nan, 5.0, 1.0]])
    fused = fuse(dense, bm25, Fusion("rrf", dense_weight=1.0, k=1, depth=10))
    assert np.allclose(fused, [[(1 / 2 + 1 / 3) / 2, (1 / 3) / 2, (1 / 4 + 1 / 2) / 2, (1 / 4) / 2]])
    heavy = fuse(dense, bm25, Fusion("rrf", dense_weight=3.0, k=1, depth=10))
    assert np.nanargmax(heavy) == 0 and heavy[0, 1] > heavy[0, 3]
    shallow = fuse(dense, bm25, Fusion("rrf", dense_weight=1.0, k=1, depth=1))  # each side's best only
    assert np.allclose(shallow, [[(1 / 2) / 2, np.nan, (1 / 2) / 2, np.nan]], equal_nan=True)


@pytest.mark.parametrize("method", ["minmax", "zscore"])
def test_score_fusion_rescales_each_side_per_query(method):
    dense = np.array([[0.9, 0.8, 0.7, np.nan], [0.5, 0.5, np.nan, np.nan]])
    bm25 = np.array([[20.0, np.nan, 50.0, 10.0], [np.nan, np.nan, np.nan, np.nan]])
    fused = fuse(dense, bm25, Fusion(method, dense_weight=1.0, depth=10))
    # scaling a side's raw scores (BM25 across corpora, cosines across models) changes nothing
    assert np.allclose(fuse(dense * 0.5 + 0.1, bm25 * 7, Fusion(method, 1.0, depth=10)), fused, equal_nan=True)
    if method == "minmax":  # a side's best 1, worst 0; a candidate the side did not return counts as its worst
        assert np.allclose(fused[0], [(1 + 0.25) / 2, (0.5 + 0) / 2, (0 + 1) / 2, (0 + 0) / 2])
    assert np.isnan(fused[1, 2:]).all() and fused[1, 0] == fused[1, 1]  # no BM25 match, tied cosines
    assert fuse(dense, bm25, Fusion(method, dense_weight=9.0, depth=10))[0].argmax() == 0  # dense's best
    assert fuse(dense, bm25, Fusion(method, dense_weight=0.1, depth=10))[0].argmax() == 2  # BM25's best


def test_fuse_pairs_ranks_ids_from_both_lists():
    dense, bm25 = [(7, 0.9), (8, 0.8), (9, 0.1)], [(9, 12.0), (7, 3.0)]
    assert [i for i, _ in fuse_pairs(dense, bm25, Fusion("rrf", 1.0, k=1))] == [7, 9, 8]
    assert [i for i, _ in fuse_pairs(dense, [], Fusion("zscore", 0.5))] == [7, 8, 9]
    assert [i for i, _ in fuse_pairs([], bm25, Fusion("minmax", 0.5))] == [9, 7]
    assert fuse_pairs([], [], Fusion()) == []
    with pytest.raises(ValueError, match="unknown fusion method"):
        fuse_pairs(dense, bm25, Fusion("sum"))


def test_letters_restore_words_typed_without_turkish_letters():
    letters = Letters().add(word for text in CORPUS.values() for word in tokens(text))
    assert letters.restore("asiri ogrenme nasil onlenir") == "aşırı öğrenme nasıl onlenir"
    assert letters.restore("Capraz dogrulama") == "Çapraz doğrulama"
    assert letters.restore("aşırı ögrenme") == "aşırı ögrenme"  # words with Turkish letters are the user's choice
    assert dense_query("ASIRI ÖĞRENME NEDIR", letters) == "aşırı öğrenme nedir"
    assert dense_query("GPU belleği") == "GPU belleği"
    # an ASCII "I" that was an "İ" is no Turkish "ı": the word was typed without Turkish letters
    assert letters.add(tokens("işaretleri ilkleme")).restore("Isaretleri ve Ilkleme") == "İşaretleri ve İlkleme"


def test_dense_query_lower_cases_title_case_but_keeps_acronyms():
    letters = Letters().add(tokens("Dikkat işaretleri ve ilkleme"))
    assert dense_query("Biyolojide Dikkat İşaretleri", letters) == "biyolojide dikkat işaretleri"
    assert dense_query("Dikkat Isaretleri", letters) == "dikkat işaretleri"
    assert dense_query("GPU (Grafik İşleme Birimi)") == "GPU (grafik işleme birimi)"
    assert dense_query("Bu bölümde GAN kullanacağız.") == "Bu bölümde GAN kullanacağız."  # a sentence stays
    assert dense_query("RNN ve LSTM") == "RNN ve LSTM"


def test_parse_filters():
    assert parse_filters(["konu=derin", "konu=klasik", "yil=2017"]) == {"konu": ["derin", "klasik"], "yil": ["2017"]}
    with pytest.raises(AnlamError, match="expected key=value"):
        parse_filters(["konu"])


# -- the index ---------------------------------------------------------------------------------


def test_build_search_and_manifest(hash_index, tmp_path):
    info = hash_index.info()
    assert (info["documents"], info["passages"], info["vector_index"]) == (6, 6, "flat, exact")
    manifest = json.loads((tmp_path / "ix" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["model"]["dim"] == 64 and manifest["model"]["path"] == "hash-embedder"
    assert len(manifest["model"]["probe"]) == 64 and "bm25" in manifest["normalisation"]
    for mode in ("dense", "bm25", "hybrid"):
        hits = hash_index.search("ASIRI OGRENME nedir", k=3, mode=mode)
        assert hits[0].id == "asiri", mode
        assert hits[0].text == CORPUS["asiri"] and hits[0].metadata == {"konu": "klasik"}
    hit = hash_index.search("asiri ogrenme", k=1, mode="hybrid")[0]
    assert hit.dense is not None and hit.bm25 is not None and hit.score > 0


def test_filters_on_metadata_and_id(hash_index):
    hits = hash_index.search("öğrenme", k=10, mode="hybrid", filter=["konu=derin"])
    assert {h.id for h in hits} <= {"dikkat", "gpu"} and hits
    assert {h.id for h in hash_index.search("öğrenme", k=10, mode="dense", filter={"id": ["kume"]})} == {"kume"}
    assert {h.id for h in hash_index.search("öğrenme", k=10, mode="bm25", filter={"konu": "derin"})} <= {"dikkat", "gpu"}
    assert hash_index.search("öğrenme", k=10, filter=["konu=yok"]) == []


def test_add_replaces_and_delete_removes(hash_index, tmp_path):
    index = Index.load(tmp_path / "ix", HashEmbedder())
    report = index.add([Document("kume", "Kümeleme yerine bölütleme denir bazen."),
                        Document("yeni", "Pekiştirmeli öğrenme ödül sinyaliyle öğrenir.", metadata={"konu": "pekistirme"})])
    assert report == {"documents": 2, "replaced": 1, "passages": 2, "deleted": 0}
    again = Index.load(tmp_path / "ix", HashEmbedder())
    assert again.info()["documents"] == 7 and again.info()["passages"] == 7
    assert again.search("pekistirmeli ogrenme", k=1)[0].id == "yeni"
    assert "bölütleme" in again.search("kumeleme", k=1, mode="bm25")[0].text
    assert again.delete(["yeni", "gpu"]) == 2
    with pytest.raises(AnlamError, match="no document with id 'gpu'; nothing deleted"):
        again.delete(["gpu"])
    final = Index.load(tmp_path / "ix", HashEmbedder())
    assert final.info()["documents"] == 5
    assert {h.id for h in final.search("GPU belleği pekiştirmeli", k=10)} == {"asiri", "gradyan", "kume", "capraz", "dikkat"}
    # the generation before the current one stays for readers still on it; older ones are gone
    assert sorted(p.name for p in (tmp_path / "ix").iterdir() if p.name.startswith("g")) == ["g000002", "g000003"]
    assert final.manifest["generation"] == "g000003"


def test_bm25_search_needs_no_model_and_another_model_is_refused(hash_index, tmp_path):
    index = Index.load(tmp_path / "ix")  # the recorded "model" is no folder: only BM25 can run
    assert index.search("gradyan inisi", k=1, mode="bm25")[0].id == "gradyan"
    other = Index.load(tmp_path / "ix", HashEmbedder(salt="başka"))
    with pytest.raises(AnlamError, match="gives different embeddings"):
        other.search("gradyan", mode="dense")
    with pytest.raises(AnlamError, match="gives different embeddings"):
        other.add([Document("x", "Yeni belge.")])


def test_bad_input_errors(tmp_path, hash_index):
    with pytest.raises(AnlamError, match="no documents with text"):
        Index.build([Document("a", "   ")], tmp_path / "bos", HashEmbedder())
    assert not (tmp_path / "bos" / "manifest.json").exists()
    (tmp_path / "dolu").mkdir()
    (tmp_path / "dolu" / "baska.txt").write_text("x", encoding="utf-8")
    with pytest.raises(AnlamError, match="not empty and not an output of `anlam index build`"):
        Index.build(docs(), tmp_path / "dolu", HashEmbedder())
    with pytest.raises(AnlamError, match="no such index"):
        Index.load(tmp_path / "yok")
    with pytest.raises(AnlamError, match="not an anlam index"):
        Index.load(tmp_path / "dolu")
    with pytest.raises(AnlamError, match="query 2: empty query"):
        hash_index.search_many(["gradyan", "  "])
    with pytest.raises(AnlamError, match="unknown search mode"):
        hash_index.search("gradyan", mode="sparse")


def test_rebuild_in_place_replaces_the_index(hash_index, tmp_path):
    with pytest.raises(AnlamError, match="add --overwrite"):
        Index.build([Document("tek", "Tek belge kaldı.")], tmp_path / "ix", HashEmbedder())
    Index.build([Document("tek", "Tek belge kaldı.")], tmp_path / "ix", HashEmbedder(), overwrite=True)
    index = Index.load(tmp_path / "ix", HashEmbedder())
    assert index.info()["documents"] == 1 and index.search("belge", k=5)[0].id == "tek"


def test_switches_to_hnsw_with_tombstones_and_back(tmp_path):
    rng = np.random.default_rng(0)
    words = ["".join(rng.choice(list("abcçdefgğhıijklmnoöprsştuüvyz"), 6)) for _ in range(400)]
    many = [Document(f"d{i}", " ".join(rng.choice(words, 12)) + ".", metadata={"grup": str(i % 3)}) for i in range(300)]
    embedder = HashEmbedder()
    index = Index.build(many, tmp_path / "ix", embedder, ann_threshold=200, ef_search=64)
    assert index.info()["vector_index"].startswith("HNSW")
    assert index.search(many[5].text, k=1, mode="dense")[0].id == "d5"
    index.delete([f"d{i}" for i in range(10)])
    info = index.info()
    assert info["tombstones"] == 10 and info["passages"] == 290
    reopened = Index.load(tmp_path / "ix", embedder)
    assert reopened.search(many[5].text, k=5, mode="dense")[0].id != "d5"
    assert all(int(h.id[1:]) >= 10 for h in reopened.search(many[5].text, k=50, mode="dense"))
    hits = reopened.search(many[20].text, k=5, mode="dense", filter=["grup=2"])
    assert hits[0].id == "d20" and all(h.metadata["grup"] == "2" for h in hits)
    reopened.delete([f"d{i}" for i in range(10, 150)])
    assert reopened.info()["vector_index"] == "flat, exact"
    assert reopened.search(many[200].text, k=1, mode="dense")[0].id == "d200"


def test_probe_is_recorded_for_the_model(tmp_path):
    embedder = HashEmbedder()
    index = Index.build(docs(), tmp_path / "ix", embedder)
    assert np.allclose(index.manifest["model"]["probe"], embedder.encode([PROBE])[0], atol=1e-5)


@pytest.mark.slow
def test_real_model_finds_turkish_paraphrases(base_embedder, tmp_path):
    index = Index.build(docs(), tmp_path / "ix", base_embedder)
    assert index.search("Model eğitim setini ezberleyince ne olur?", k=1, mode="dense")[0].id == "asiri"
    assert index.search("ETIKETSIZ VERIYI GRUPLAMA", k=1, mode="hybrid")[0].id == "kume"
    assert index.search("gpu bellegi yetmiyor", k=1, mode="dense")[0].id == "gpu"  # letters put back
    assert index.search("ekran kartının belleği yetmiyor", k=1, mode="hybrid")[0].id == "gpu"


def test_a_build_that_fails_leaves_nothing_behind(tmp_path, monkeypatch):
    def crash(items):
        raise RuntimeError("disk full")

    monkeypatch.setattr("anlam.search.index.Lexical.build", crash)  # fails after the vectors were written
    with pytest.raises(RuntimeError, match="disk full"):
        Index.build(docs(), tmp_path / "ix", HashEmbedder())
    assert not (tmp_path / "ix").exists()
