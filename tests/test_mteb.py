"""mteb on an anlam model folder, offline: tiny local Turkish tasks through ``mteb.evaluate``."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

anlam_mteb = pytest.importorskip("anlam.evaluate.mteb")

PAIRS = pd.DataFrame(
    {
        "sentence_0": [
            "Aşırı öğrenme, modelin eğitim verisini ezberleyip yeni veride kötüleşmesidir.",
            "GPU'lar matris çarpımlarını paralel yürüttüğü için eğitimi hızlandırır.",
            "Öğrenme oranı çok büyük seçilirse kayıp ıraksayabilir.",
            "İstanbul'da bugün hava yağmurlu.",
            "Dropout, eğitim sırasında nöronların bir kısmını rastgele kapatır.",
            "ÇAPRAZ DOĞRULAMA VERİYİ K PARÇAYA BÖLER.",
            "asiri ogrenme icin duzenlilestirme kullanilir",
            "Toplu normalleştirme ara katman çıktılarını ölçekler.",
        ],
        "sentence_1": [
            "Model eğitim kümesini ezberlediğinde görmediği örneklerde başarısı düşer.",
            "Ekran kartları paralel hesap yaptığından derin ağlar daha çabuk eğitilir.",
            "Adım boyu fazla büyükse eğitim kaybı patlayabilir.",
            "Gradyan inişi kaybın eğimine göre ağırlıkları günceller.",
            "Eğitimde bazı birimlerin rastgele sıfırlanması aşırı uyumu azaltır.",
            "Çapraz doğrulamada veri k katlamaya ayrılır ve her kat sırayla test olur.",
            "Aşırı öğrenmeyi önlemek için düzenlileştirme yapılır.",
            "Kedi koltukta uyuyor.",
        ],
        "label": [0.9, 0.85, 0.8, 0.0, 0.75, 0.95, 0.9, 0.05],
    }
)
QUERIES = {"q1": "aşırı öğrenme nedir", "q2": "GPU'LAR NEDEN HIZLI", "q3": "dropout ne işe yarar"}
CORPUS = {
    "d1": "Aşırı öğrenme, modelin eğitim verisini ezberleyip yeni veride kötüleşmesidir.",
    "d2": "GPU'lar matris çarpımlarını paralel yürüttüğü için eğitimi hızlandırır.",
    "d3": "Dropout, eğitim sırasında nöronların bir kısmını rastgele kapatır.",
    "d4": "İstanbul'da bugün hava yağmurlu.",
}
QRELS = {"q1": {"d1"}, "q2": {"d2"}, "q3": {"d3"}}
CLUSTER_LABELS = ["düzenlileştirme", "donanım", "optimizasyon", "genel", "düzenlileştirme", "değerlendirme",
                  "düzenlileştirme", "optimizasyon"]


class TinySTS(anlam_mteb.LocalSTS):
    metadata = anlam_mteb.local_metadata("TinySTS", "STS", "Eight Turkish ML pairs.")

    def pairs(self):
        return PAIRS


class TinyPairs(anlam_mteb.LocalPairClassification):
    metadata = anlam_mteb.local_metadata("TinyPairs", "PairClassification", "Eight Turkish ML pairs, binary.")

    def pairs(self):
        return PAIRS


class TinyRetrieval(anlam_mteb.LocalRetrieval):
    metadata = anlam_mteb.local_metadata("TinyRetrieval", "Retrieval", "Three questions, four documents.")
    qrels = QRELS

    def retrieval(self):
        return QUERIES, CORPUS, self.qrels


class TinyClustering(anlam_mteb.LocalClustering):
    metadata = anlam_mteb.local_metadata("TinyClustering", "Clustering", "Eight sentences, five topics.")
    n_clusters = 2  # bootstrap rounds; mteb's 10 only cost time here

    def clustering(self):
        return PAIRS["sentence_0"].tolist(), CLUSTER_LABELS


def tiny_tasks():
    return [TinySTS(), TinyPairs(), TinyRetrieval(), TinyClustering()]


def _forbid_hub(patch):
    """Any attempt to load a hub dataset fails the test."""
    import datasets
    import mteb.abstasks.abstask as abstask

    def refuse(*args, **kwargs):
        raise AssertionError(f"hub dataset load attempted: {args} {kwargs}")

    patch.setattr(abstask, "load_dataset", refuse)
    patch.setattr(datasets, "load_dataset", refuse)


@pytest.fixture
def no_hub(monkeypatch):
    _forbid_hub(monkeypatch)


@pytest.fixture(scope="module")
def tiny_run(tiny_model_path, tmp_path_factory):
    """The four tiny tasks run once through ``run_mteb``, offline."""
    out = tmp_path_factory.mktemp("mteb")
    with pytest.MonkeyPatch.context() as patch:
        _forbid_hub(patch)
        scores = anlam_mteb.run_mteb(tiny_model_path, tiny_tasks(), out=out, device="cpu")
    return scores, out


def test_tiny_tasks_run_end_to_end_offline(tiny_run, tiny_model_path):
    scores, out = tiny_run
    assert set(scores) == {"TinySTS", "TinyPairs", "TinyRetrieval", "TinyClustering"}
    for task, metrics in scores.items():
        assert -1.0 <= metrics["main_score"] <= 1.0, task
    assert scores["TinySTS"]["main_score"] == scores["TinySTS"]["cosine_spearman"]
    assert scores["TinyPairs"]["main_score"] == scores["TinyPairs"]["max_ap"]
    assert scores["TinyRetrieval"]["main_score"] == scores["TinyRetrieval"]["ndcg_at_10"]
    assert scores["TinyClustering"]["main_score"] == scores["TinyClustering"]["v_measure"]
    files = {p.name: p for p in out.rglob("*.json")}
    expected = {"TinySTS.json", "TinyPairs.json", "TinyRetrieval.json", "TinyClustering.json", "model_meta.json"}
    assert expected <= set(files)
    saved = json.loads(files["TinySTS.json"].read_text(encoding="utf-8"))
    assert saved["scores"]["test"][0]["main_score"] == pytest.approx(scores["TinySTS"]["main_score"], abs=1e-5)
    assert files["TinySTS.json"].parent.parent.name == f"anlam__{tiny_model_path.name}"


def test_sts_uses_the_query_prompt_on_both_sides(tiny_run, tiny_embedder):
    """mteb's Spearman equals ours computed with "query: " on both sides."""
    scores, _ = tiny_run

    def spearman(prompt):
        a = tiny_embedder.encode(PAIRS["sentence_0"].tolist(), prompt_name=prompt)
        b = tiny_embedder.encode(PAIRS["sentence_1"].tolist(), prompt_name=prompt)
        return spearmanr((a * b).sum(axis=1), PAIRS["label"])[0]

    assert scores["TinySTS"]["cosine_spearman"] == pytest.approx(spearman("query"), abs=1e-6)


def test_retrieval_uses_query_and_passage_prompts(tiny_embedder, tiny_model_path, tmp_path, no_hub):
    """The retrieval scores mteb saves are cosines of "query: " queries against "passage: " documents."""
    import mteb

    task = TinyRetrieval()
    encoder = anlam_mteb.mteb_model(tiny_model_path, device="cpu")
    mteb.evaluate(encoder, task, cache=None, prediction_folder=tmp_path, show_progress_bar=False)
    saved = json.loads((tmp_path / task.prediction_file_name).read_text(encoding="utf-8"))
    predicted = saved["default"]["test"]
    q = tiny_embedder.encode(list(QUERIES.values()), prompt_name="query")
    d = tiny_embedder.encode(list(CORPUS.values()), prompt_name="passage")
    expected = q @ d.T
    for i, qid in enumerate(QUERIES):
        for j, did in enumerate(CORPUS):
            assert predicted[qid][did] == pytest.approx(float(expected[i, j]), abs=1e-5)


def test_prompt_mapping():
    e5 = anlam_mteb.mteb_prompts({"query": "query: ", "passage": "passage: "})
    assert e5 == {"query": "query: ", "STS": "query: ", "PairClassification": "query: ", "Clustering": "query: ",
                  "document": "passage: "}
    assert anlam_mteb.mteb_prompts(None) == {}
    assert anlam_mteb.mteb_prompts({"query": "", "passage": ""}) == {}


def test_bad_task_data_names_the_task(monkeypatch, tiny_model_path, tmp_path):
    from anlam.errors import AnlamError

    monkeypatch.setattr(TinyPairs, "pairs", lambda self: PAIRS[PAIRS["label"] > 0.5])
    with pytest.raises(AnlamError, match="TinyPairs.*both positive and negative"):
        anlam_mteb.run_mteb(tiny_model_path, [TinySTS(), TinyPairs()], out=tmp_path / "res", device="cpu")
    assert not (tmp_path / "res").exists()  # nothing half-written
    monkeypatch.setattr(TinySTS, "pairs", lambda self: PAIRS.drop(columns="label"))
    with pytest.raises(AnlamError, match="TinySTS.*missing label"):
        TinySTS().load_data()
    monkeypatch.setattr(TinyRetrieval, "qrels", {"q1": {"d9"}})
    with pytest.raises(AnlamError, match="TinyRetrieval.*'d9'"):
        TinyRetrieval().load_data()
    with pytest.raises(AnlamError, match="unknown mteb task 'sts'"):
        anlam_mteb.builtin_tasks(["sts"])


def test_builtin_tasks_load_anlam_data_without_the_hub(no_hub):
    tasks = anlam_mteb.builtin_tasks()
    assert [t.metadata.name for t in tasks] == ["AnlamSTSbTR", "AnlamMLTRSTS", "AnlamMLTRPairClassification",
                                                "AnlamMLTRRetrieval", "AnlamMLTRClustering"]
    for task in tasks:
        task.load_data()
        split = task.dataset["default"]["test"]
        assert len(split["queries"] if isinstance(split, dict) else split) > 0
    sts = tasks[0].dataset["default"]["test"]
    assert 0.0 <= min(sts["score"]) and max(sts["score"]) <= 1.0
    assert set(np.unique(tasks[2].dataset["default"]["test"]["labels"])) == {0, 1}


def test_cli_mteb_json(cli, tiny_model_path, tmp_path, no_hub):
    result = cli("mteb", tiny_model_path, "--task", "ml-tr-retrieval", "--out", tmp_path / "res", "--json")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line, parse_constant=pytest.fail) for line in result.stdout.splitlines() if line.strip()]
    assert [r["task"] for r in rows] == ["AnlamMLTRRetrieval"]
    assert 0.0 <= rows[0]["main_score"] <= 1.0
    assert rows[0]["main_score"] == rows[0]["ndcg_at_10"]
    assert list((tmp_path / "res").rglob("AnlamMLTRRetrieval.json"))


def test_cli_unknown_task(cli, tiny_model_path):
    result = cli("mteb", tiny_model_path, "--task", "nope")
    assert result.returncode == 2
    assert "unknown mteb task 'nope'" in result.stderr


class StsbHead(anlam_mteb.AnlamSTSbTR):
    """The first 100 STSb-TR test pairs: enough to compare, cheap on two cores."""

    metadata = anlam_mteb.local_metadata("StsbHead", "STS", "First 100 STSb-TR test pairs.")

    def pairs(self):
        return super().pairs().head(100)


@pytest.mark.slow
def test_base_matches_anlams_own_spearman(base_embedder, base_model_path, no_hub):
    """On the real e5 base, mteb's STS Spearman is the one anlam computes ("query: " on both sides).

    On all 1,379 pairs both give 0.7678 (0.7582 without the prompt); see docs/mteb.md.
    """
    from anlam.data import stsb_tr

    scores = anlam_mteb.run_mteb(base_model_path, [StsbHead()], device="cpu", batch_size=64)
    pairs = stsb_tr("test").head(100)
    a = base_embedder.encode(pairs["sentence_0"].tolist(), prompt_name="query", batch_size=64)
    b = base_embedder.encode(pairs["sentence_1"].tolist(), prompt_name="query", batch_size=64)
    ours = spearmanr((a * b).sum(axis=1), pairs["label"])[0]
    assert scores["StsbHead"]["cosine_spearman"] == pytest.approx(ours, abs=2e-5)
