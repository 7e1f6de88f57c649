"""The Milvus store behind the same ``Index`` API, against Milvus Lite (embedded, a local .db)."""

from __future__ import annotations

import pytest

from anlam.data import Document
from anlam.errors import AnlamError
from anlam.search import Index

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")


@pytest.fixture
def milvus_index(tmp_path):
    from test_search import HashEmbedder, docs

    try:
        return Index.build(docs(), tmp_path / "ix", HashEmbedder(), store=f"milvus:{tmp_path / 'milvus.db'}")
    except AnlamError as exc:
        if "cannot connect to Milvus" in str(exc):
            pytest.skip(f"Milvus Lite does not start here: {exc}")
        raise


def test_milvus_store_builds_searches_filters_adds_and_deletes(milvus_index, tmp_path):
    from test_search import CORPUS, HashEmbedder

    info = milvus_index.info()
    assert info["store"].startswith("Milvus at ") and (info["documents"], info["passages"]) == (6, 6)
    for mode in ("dense", "bm25", "hybrid"):
        hit = milvus_index.search("ASIRI OGRENME nedir", k=3, mode=mode)[0]
        assert (hit.id, hit.text, hit.metadata) == ("asiri", CORPUS["asiri"], {"konu": "klasik"}), mode
    assert {h.id for h in milvus_index.search("öğrenme", k=10, filter=["konu=derin"])} == {"dikkat", "gpu"}
    assert {h.id for h in milvus_index.search("öğrenme", k=10, mode="bm25", filter={"id": ["kume"]})} <= {"kume"}
    milvus_index.close()

    index = Index.load(tmp_path / "ix", HashEmbedder())
    report = index.add([Document("kume", "Kümeleme yerine bölütleme de denir."),
                        Document("yeni", "Pekiştirmeli öğrenme ödülle öğrenir.", metadata={"konu": "pekistirme"})])
    assert (report["documents"], report["replaced"]) == (2, 1)
    assert index.search("pekistirmeli ogrenme", k=1, mode="dense")[0].id == "yeni"
    assert "bölütleme" in index.search("kumeleme", k=1, mode="bm25")[0].text
    assert index.delete(["yeni", "gpu"]) == 2
    assert index.info()["passages"] == 5
    assert {h.id for h in index.search("gpu pekiştirmeli öğrenme", k=10, mode="dense")} == {
        "asiri", "gradyan", "kume", "capraz", "dikkat"}


def test_rows_of_an_interrupted_add_stay_invisible(milvus_index, tmp_path):
    """An add killed after writing to Milvus but before the manifest moved on leaves rows nobody sees."""
    import numpy as np

    from anlam.search.chunking import Passage

    from anlam.search.milvus import MilvusStore
    from test_search import HashEmbedder

    killed = MilvusStore.open(milvus_index.manifest["store"])  # the writer that will not get to the manifest
    ghost = HashEmbedder().encode(["Hayalet belge."])
    killed.commit(tmp_path, [Passage("hayalet", "Hayalet belge.", 0)], ["hayalet"], ghost,
                  np.array([milvus_index.manifest["next_id"]]), [])
    reader = Index.load(tmp_path / "ix", HashEmbedder())
    for index in (milvus_index, reader):
        assert "hayalet" not in {h.id for h in index.search("Hayalet belge", k=10, mode="dense")}
        assert index.store.count() == 6
    milvus_index.add([Document("gercek", "Gerçek belge.")])  # the next write removes the leftover first
    assert {h.id for h in milvus_index.search("belge", k=10, mode="dense")} >= {"gercek"}
    assert "hayalet" not in {h.id for h in milvus_index.search("Hayalet belge", k=10, mode="dense")}
    assert milvus_index.store.count() == 7
