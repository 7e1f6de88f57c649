"""The evaluation suite: exact values on a fixed-vector model, the cached path against plain
sentence-transformers evaluators, and the whole suite on the tiny model (groups, report files,
determinism, user data, do-no-harm)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from anlam.data import mltr_pairs, mltr_retrieval, tqp
from anlam.errors import AnlamError
from anlam.evaluate import (
    GROUPS,
    UserData,
    evaluate_embedder,
    guarded_metrics,
    harm,
    metric_names,
    run_suite,
    spot_check,
    tqp_retrieval,
)
from anlam.models import Embedder


class FixedVectors:
    """A stand-in SentenceTransformer whose ``encode`` returns hand-picked vectors for given texts.

    ``seen`` records (prompt prefix, text) of every text encoded, so a test can check the prompt each
    side got; a text the test did not list is a KeyError.
    """

    similarity_fn_name = "cosine"
    prompts = {"query": "query: ", "passage": "passage: "}
    default_prompt_name = None
    model_card_data = SimpleNamespace(set_evaluation_metrics=lambda *args, **kwargs: None)

    def __init__(self, vectors: dict[str, Sequence[float]]) -> None:
        self.vectors = {text: np.asarray(v, dtype=np.float32) for text, v in vectors.items()}
        self.seen: set[tuple[str, str]] = set()

    def get_embedding_dimension(self) -> int:
        return 3

    def encode(self, sentences, prompt_name=None, prompt=None, normalize_embeddings=False, convert_to_tensor=False,
               **_):
        if prompt is None:
            prompt = self.prompts[prompt_name] if prompt_name else ""
        texts = [sentences] if isinstance(sentences, str) else list(sentences)
        self.seen |= {(prompt, text) for text in texts}
        out = np.stack([self.vectors[text] for text in texts])
        if normalize_embeddings:
            out = out / np.linalg.norm(out, axis=1, keepdims=True)
        out = out[0] if isinstance(sentences, str) else out
        if convert_to_tensor:
            import torch

            return torch.from_numpy(out)
        return out

    def encode_query(self, sentences, **kwargs):
        return self.encode(sentences, **kwargs)

    encode_document = encode_query


def _at(cosine: float) -> list[float]:
    """A unit vector at ``cosine`` to (1, 0, 0)."""
    return [cosine, math.sqrt(1 - cosine**2), 0.0]


# ML-TR-like graded pairs; every first sentence sits at (1, 0, 0), so a pair's cosine is set by the second
PAIRS = pd.DataFrame([
    ("Aşırı öğrenme, modelin eğitim verisini ezberlemesidir.",
     "Model eğitim verisini ezberlerse aşırı öğrenir.", 1.0, "paraphrase", 0.9),
    ("Dropout nöronları rastgele kapatır.",
     "Dropout eğitimde bazı birimleri rastgele sıfırlar.", 0.9, "paraphrase", 0.8),
    ("Öğrenme oranı adım boyunu belirler.",
     "Adımın büyüklüğünü öğrenme oranı ayarlar.", 0.7, "paraphrase", 0.5),
    ("Batch normalizasyonu eğitimi hızlandırır.",
     "Batch normalizasyonu eğitimi yavaşlatır.", 0.3, "near-miss", 0.6),
    ("L1 düzenlileştirme seyrek ağırlıklar verir.",
     "L2 düzenlileştirme seyrek ağırlıklar verir.", 0.2, "near-miss", 0.55),
    ("Kesinlik yanlış pozitifleri cezalandırır.",
     "Duyarlılık yanlış pozitifleri cezalandırır.", 0.1, "near-miss", 0.2),
    ("GPU matris çarpımını hızlandırır.",
     "İstanbul'da bugün hava yağmurlu.", 0.0, "unrelated", 0.0),
], columns=["sentence_0", "sentence_1", "label", "grade", "cosine"])
# three definitions on the axes; a query's vector orders them, so the rank of its answer is set by hand
CORPUS = {"asiri-ogrenme:def": "Aşırı öğrenme, modelin eğitim verisini ezberleyip yeni veride kötüleşmesidir.",
          "dropout:def": "Dropout, eğitimde nöronların bir kısmını rastgele kapatan düzenlileştirmedir.",
          "ogrenme-orani:def": "Öğrenme oranı, gradyan adımının büyüklüğünü belirleyen hiperparametredir."}
DOC_VECTORS = [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
FIRST, LAST = [3, 2, 1], [1, 2, 3]  # definition order: asiri-ogrenme, dropout, ogrenme-orani / the reverse
QUERIES = {  # id -> (text, vector, ascii-typed text, its vector, text in capitals); ":u" = describes it unnamed
    "asiri-ogrenme:q0": ("Aşırı öğrenme nedir?", FIRST, "Asiri ogrenme nedir?", LAST, "AŞIRI ÖĞRENME NEDİR?"),
    "dropout:q0": ("Dropout ne işe yarar?", FIRST, "Dropout ne ise yarar?", FIRST, "DROPOUT NE İŞE YARAR?"),
    "ogrenme-orani:u0": ("Eğitimde adımların ne kadar büyük olacağını hangi ayar belirler?", LAST,
                         "Egitimde adimlarin ne kadar buyuk olacagini hangi ayar belirler?", LAST,
                         "EĞİTİMDE ADIMLARIN NE KADAR BÜYÜK OLACAĞINI HANGİ AYAR BELİRLER?"),
    "asiri-ogrenme:u0": ("Model eğitim verisinde çok iyi ama yeni veride kötüyse buna ne denir?", LAST,
                         "Model egitim verisinde cok iyi ama yeni veride kotuyse buna ne denir?", LAST,
                         "MODEL EĞİTİM VERİSİNDE ÇOK İYİ AMA YENİ VERİDE KÖTÜYSE BUNA NE DENİR?"),
}
# two regularisation sentences apart from the rest; the third sits with the optimisation ones
CLUSTERS = [("Dropout aşırı öğrenmeyi azaltır.", "düzenlileştirme", [1, 0, 0]),
            ("Ağırlık cezası büyük ağırlıkları küçültür.", "düzenlileştirme", [1, 0, 0]),
            ("Erken durdurma doğrulama kaybı artınca eğitimi keser.", "düzenlileştirme", [0, 1, 0]),
            ("Adam her parametreye ayrı adım boyu verir.", "optimizasyon", [0, 1, 0]),
            ("Momentum eski gradyanları biriktirir.", "optimizasyon", [0, 1, 0]),
            ("Öğrenme oranı takvimi adımları zamanla küçültür.", "optimizasyon", [0, 1, 0])]


@pytest.fixture
def fixed(monkeypatch) -> FixedVectors:
    """The fixed-vector model, with the suite's ML-TR loaders answering the sets above."""
    import anlam.evaluate.suite as suite

    vectors: dict[str, Sequence[float]] = {}
    for row in PAIRS.itertuples():
        vectors[row.sentence_0], vectors[row.sentence_1] = [1.0, 0.0, 0.0], _at(row.cosine)
    vectors |= dict(zip(CORPUS.values(), DOC_VECTORS))
    for text, vector, folded, folded_vector, upper in QUERIES.values():
        vectors |= {text: vector, folded: folded_vector, upper: vector}
    vectors |= {text: vector for text, _, vector in CLUSTERS}
    qrels = {qid: {qid.split(":")[0] + ":def"} for qid in QUERIES}
    monkeypatch.setattr(suite, "mltr_pairs", lambda split: PAIRS.drop(columns="cosine"))
    monkeypatch.setattr(suite, "mltr_retrieval", lambda split: ({q: v[0] for q, v in QUERIES.items()}, CORPUS, qrels))
    clustering = [text for text, _, _ in CLUSTERS], [label for _, label, _ in CLUSTERS]
    monkeypatch.setattr(suite, "mltr_clustering", lambda split: clustering)
    return FixedVectors(vectors)


def _entropy(*counts: int) -> float:
    total = sum(counts)
    return -sum(c / total * math.log(c / total) for c in counts if c)


def test_exact_values_on_fixed_vectors(fixed):
    result = evaluate_embedder(Embedder(fixed, "sabit"), "sabit", split="dev",
                               tasks=["sts", "pairs", "retrieval", "robustness", "clustering"])
    # STS: ranking the cosines against the labels swaps 0.5/0.6 and 0.55/0.5: rank differences 2, 1, 1
    spearman = 1 - 6 * (2**2 + 1 + 1) / (7 * (7**2 - 1))
    # pairs (the unrelated one left out): by cosine + + - - + -; answering "paraphrase" for the top two
    # gets 5 of 6 right, with F1 0.8 (precision 1, recall 2/3), threshold halfway from 0.8 to 0.6;
    # average precision over the positives at ranks 1, 2 and 5
    ap = (1 / 1 + 2 / 2 + 3 / 5) / 3
    # retrieval: the answer ranks 1 and 2 (named questions), 1 and 3 (unnamed ones); typed without
    # Turkish letters the first named question finds its answer third; in capitals nothing changes
    mrr, named, unnamed = (1 + 1 / 2 + 1 + 1 / 3) / 4, (1 + 1 / 2) / 2, (1 + 1 / 3) / 2
    ascii_mrr = (1 / 3 + 1 / 2 + 1 + 1 / 3) / 4
    ndcg = (1 + 1 / math.log2(3) + 1 + 1 / math.log2(4)) / 4
    # clustering: k-means finds {2 regularisation} and {1 regularisation + 3 optimisation}
    homogeneity = 1 - (4 / 6) * _entropy(1, 3) / _entropy(3, 3)
    completeness = 1 - (3 / 6) * _entropy(2, 1) / _entropy(2, 4)
    v_measure = 2 * homogeneity * completeness / (homogeneity + completeness)
    expected = {
        "ml-tr-sts-dev_spearman_cosine": spearman,
        "ml-tr-pairs-dev_cosine_accuracy": 5 / 6,
        "ml-tr-pairs-dev_cosine_accuracy_threshold": 0.7,
        "ml-tr-pairs-dev_cosine_f1": 0.8,
        "ml-tr-pairs-dev_cosine_precision": 1.0,
        "ml-tr-pairs-dev_cosine_recall": 2 / 3,
        "ml-tr-pairs-dev_cosine_f1_threshold": 0.7,
        "ml-tr-pairs-dev_cosine_ap": ap,
        "ml-tr-retrieval-dev_cosine_mrr@10": mrr,
        "ml-tr-retrieval-dev_cosine_recall@1": 2 / 4,
        "ml-tr-retrieval-dev_cosine_ndcg@10": ndcg,
        "ml-tr-retrieval-named-dev_cosine_mrr@10": named,
        "ml-tr-retrieval-unnamed-dev_cosine_mrr@10": unnamed,
        "ml-tr-retrieval-ascii-dev_cosine_mrr@10": ascii_mrr,
        "ml-tr-retrieval-upper-dev_cosine_mrr@10": mrr,
        "ml-tr-clustering-dev_v_measure": v_measure,
    }
    metrics = result.metrics
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(value, abs=1e-6), key
    # every key is "{task}-{split}_{metric}"
    assert {key.split("_", 1)[0].rsplit("-", 1)[1] for key in metrics} == {"dev"}
    np.testing.assert_allclose(result.sts_scores, PAIRS["cosine"], atol=1e-6)
    np.testing.assert_allclose(result.pair_scores["near-miss"], [0.6, 0.55, 0.2], atol=1e-6)
    # prompts: documents read "passage: ", every other text "query: " (pairs on both sides), nothing bare
    documents = set(CORPUS.values())
    assert {prompt for prompt, text in fixed.seen if text in documents} == {"passage: "}
    assert {prompt for prompt, text in fixed.seen if text not in documents} == {"query: "}


def test_cached_path_equals_plain_sentence_transformers_evaluators(tiny_embedder, tiny_model_path, monkeypatch):
    """anlam's cached suite gives the figures sentence-transformers' own evaluators give on the same model."""
    import anlam.evaluate.suite as suite
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.evaluation import (
        BinaryClassificationEvaluator,
        EmbeddingSimilarityEvaluator,
        InformationRetrievalEvaluator,
    )

    # a slice of ML-TR dev (every grade; a quarter of the questions, all definitions) keeps it quick
    pairs = mltr_pairs("dev").groupby("grade").head(40)
    queries, corpus, qrels = mltr_retrieval("dev")
    queries = dict(list(queries.items())[::4])
    qrels = {q: qrels[q] for q in queries}
    monkeypatch.setattr(suite, "mltr_pairs", lambda split: pairs)
    monkeypatch.setattr(suite, "mltr_retrieval", lambda split: (queries, corpus, qrels))
    ours = evaluate_embedder(tiny_embedder, "tiny", tasks=["sts", "pairs", "retrieval"], split="dev").metrics
    plain = SentenceTransformer(str(tiny_model_path), device="cpu")
    plain.default_prompt_name = "query"  # anlam reads both sides of a pair with the query prompt
    binary = pairs[pairs["grade"].isin(["paraphrase", "near-miss"])]
    expected = EmbeddingSimilarityEvaluator(pairs["sentence_0"].tolist(), pairs["sentence_1"].tolist(),
                                            pairs["label"].tolist(), name="ml-tr-sts-dev")(plain)
    labels = (binary["label"] >= 0.5).astype(int).tolist()
    expected |= BinaryClassificationEvaluator(binary["sentence_0"].tolist(), binary["sentence_1"].tolist(), labels,
                                              name="ml-tr-pairs-dev")(plain)
    expected |= InformationRetrievalEvaluator(
        queries, corpus, qrels, name="ml-tr-retrieval-dev", mrr_at_k=[10], ndcg_at_k=[10], accuracy_at_k=[1, 5, 10],
        precision_recall_at_k=[1, 5, 10], map_at_k=[100], query_prompt_name="query", corpus_prompt_name="passage",
    )(plain)
    assert {key.split("_", 1)[0] for key in expected} == {"ml-tr-sts-dev", "ml-tr-pairs-dev", "ml-tr-retrieval-dev"}
    assert expected.keys() <= ours.keys()
    for key, value in expected.items():
        assert ours[key] == pytest.approx(value, abs=1e-6), key


def test_spot_check_is_the_suites_own_figures(fixed, monkeypatch):
    """The export's quality check reads the suite's keys and values, not look-alikes."""
    import anlam.data.d2l as d2l
    import anlam.evaluate.suite as suite

    queries = {q: v[0] for q, v in QUERIES.items()}
    qrels = {qid: {qid.split(":")[0] + ":def"} for qid in QUERIES}
    monkeypatch.setattr(d2l, "d2l_blocks", lambda split: None)
    monkeypatch.setattr(d2l, "heading_retrieval", lambda blocks: (queries, CORPUS, qrels))
    monkeypatch.setattr(suite, "stsb_tr", lambda split: PAIRS.drop(columns="cosine"))
    embedder = Embedder(fixed, "sabit")
    full = evaluate_embedder(embedder, "sabit", tasks=["sts", "retrieval"], split="dev").metrics
    assert spot_check(embedder, "dev") == {
        "ml-tr-retrieval-dev_cosine_mrr@10": full["ml-tr-retrieval-dev_cosine_mrr@10"],
        "d2l-heading-dev_cosine_mrr@10": full["ml-tr-retrieval-dev_cosine_mrr@10"],
        "stsb-tr-dev_spearman_cosine": full["ml-tr-sts-dev_spearman_cosine"],
    }
    with pytest.raises(AnlamError, match="unknown split 'train'"):
        spot_check(embedder, "train")


@pytest.fixture(scope="module")
def report(tiny_model_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "report"
    return out, run_suite([tiny_model_path, tiny_model_path], out, device="cpu")


def test_every_reported_metric_is_there_and_carries_the_split(report):
    _, result = report
    metrics = result["metrics"][result["models"][0]]
    for key in metric_names("test"):
        assert key in metrics, key
    # every key is "{task}-{split}_{metric}"
    assert {key.split("_", 1)[0].rsplit("-", 1)[1] for key in metrics} == {"test"}
    for key in ("ml-tr-sts-test_spearman_cosine", "ml-tr-retrieval-test_cosine_mrr@10", "d2l-heading-test_cosine_mrr@10",
                "d2l-clustering-chapter-test_v_measure", "tqp-test_cosine_mrr@10"):
        assert -1.0 <= metrics[key] <= 1.0
    # an identical second model does no harm
    assert result["harm"] == {result["models"][1]: {}}


def test_report_files_and_table(report):
    out, result = report
    for name in ("report.md", "report.json", "sts-scatter.png", "pair-histograms.png", "headline.png"):
        assert (out / name).exists(), name
    saved = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert saved["metrics"] == result["metrics"]
    table = (out / "report.md").read_text(encoding="utf-8")
    for group in GROUPS:
        assert f"| **{group}, test** |" in table, group
    assert "| ML-TR STS Spearman |" in table and "(+0.0000)" in table
    assert "| **do-no-harm (real text + general)** | reference | no harm |" in table


def test_identical_across_runs(report, tiny_model_path):
    _, first = report
    again = run_suite([tiny_model_path], device="cpu")
    name = first["models"][0]
    assert again["metrics"][again["models"][0]] == first["metrics"][name]


def test_user_pairs_and_retrieval(tmp_path, tiny_model_path):
    pairs = tmp_path / "ciftler.jsonl"
    pd.DataFrame({"a": ["Öğrenme oranı çok yüksek.", "Dropout aşırı öğrenmeyi azaltır.", "Kedi uyuyor."],
                  "b": ["Learning rate fazla büyük.", "Dropout overfitting'i azaltır.", "Gradyan patladı."],
                  "skor": [4.5, 5.0, 0.5]}).to_json(pairs, orient="records", lines=True, force_ascii=False)
    queries = tmp_path / "q.jsonl"
    corpus = tmp_path / "c.jsonl"
    qrels = tmp_path / "qrels.csv"
    pd.DataFrame({"id": ["q1", "q2"], "text": ["asiri ogrenme nedir", "GPU belleği yetmiyor"]}).to_json(queries, orient="records", lines=True, force_ascii=False)
    pd.DataFrame({"id": ["d1", "d2", "d3"], "text": ["Aşırı öğrenme ezberlemedir.", "Batch boyutunu küçültün.", "Hava güzel."]}).to_json(corpus, orient="records", lines=True, force_ascii=False)
    pd.DataFrame({"query_id": ["q1", "q2"], "doc_id": ["d1", "d2"]}).to_csv(qrels, index=False)
    user = UserData(pairs=pairs, columns="a,b,skor", scale=5, queries=queries, corpus=corpus, qrels=qrels)
    result = run_suite([tiny_model_path], user=user, tasks=["user"], device="cpu", split="dev")
    metrics = result["metrics"][result["models"][0]]
    assert "user-pairs-dev_spearman_cosine" in metrics and "user-retrieval-dev_cosine_mrr@10" in metrics
    assert "user-pairs-dev_cosine_ap" in metrics
    assert "| user-pairs-dev_spearman_cosine |" in result["markdown"]
    pd.DataFrame({"query_id": ["q1"], "doc_id": ["d9"]}).to_csv(qrels, index=False)
    with pytest.raises(AnlamError, match="row 1: doc_id 'd9' is not in the corpus"):
        run_suite([tiny_model_path], user=user, tasks=["user"], device="cpu")


def test_cli_eval_json_on_dev(cli, tiny_model_path):
    result = cli("eval", tiny_model_path, "--task", "general", "--split", "dev", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert data["split"] == "dev"
    assert set(data["metrics"][data["models"][0]]) >= {"stsb-tr-dev_spearman_cosine", "tqp-dev_cosine_mrr@10"}


def test_unknown_task_is_an_error(cli, tiny_model_path):
    result = cli("eval", tiny_model_path, "--task", "retreival")
    assert result.returncode == 2
    assert "unknown task retreival" in result.stderr and "retrieval" in result.stderr
    result = cli("eval", tiny_model_path, "--split", "train")
    assert result.returncode == 2 and "unknown split 'train'" in result.stderr


def test_harm_names_each_guarded_metric_that_falls():
    base = {key: 0.5 for key in guarded_metrics("dev")} | {"ml-tr-sts-dev_spearman_cosine": 0.4}
    tuned = dict(base) | {"d2l-heading-dev_cosine_mrr@10": 0.49, "stsb-tr-dev_spearman_cosine": 0.496,
                          "ml-tr-sts-dev_spearman_cosine": 0.1}
    # 0.01 below is harm, 0.004 below is within the tolerance, and the domain metric is not guarded
    assert harm(base, tuned, "dev") == {"d2l-heading-dev_cosine_mrr@10": -0.01}
    assert not any(key.startswith("ml-tr") for key in guarded_metrics("dev"))


def test_tqp_halves_are_disjoint():
    dev, test = tqp_retrieval("dev"), tqp_retrieval("test")
    assert dev[0] and test[0]
    assert not (set(dev[0].values()) | set(dev[1].values())) & (set(test[0].values()) | set(test[1].values()))


@pytest.mark.parametrize("split", ["dev", "test"])
def test_tqp_retrieval_never_finds_the_query_itself(split):
    queries, corpus, qrels = tqp_retrieval(split)
    assert not set(queries.values()) & set(corpus.values())
    pairs = {frozenset(p) for p in zip(tqp("dev")["sentence_0"], tqp("dev")["sentence_1"])}
    for qid, text in queries.items():
        assert qrels[qid] and qrels[qid] <= set(corpus)
        # at least one relevant document is a direct TQP paraphrase of the question
        assert any(frozenset((text, corpus[d])) in pairs for d in qrels[qid])
