"""The evaluation suite on the tiny model: every task in its group, report files, determinism, user data, do-no-harm."""

import json

import pandas as pd
import pytest

from anlam.errors import AnlamError
from anlam.data import tqp
from anlam.evaluate import GROUPS, UserData, _tqp_retrieval, guarded_metrics, harm, metric_names, run_suite


@pytest.fixture(scope="module")
def report(tiny_model_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "report"
    return out, run_suite([tiny_model_path, tiny_model_path], out, device="cpu")


def test_every_reported_metric_is_there_and_carries_the_split(report):
    _, result = report
    metrics = result["metrics"][result["models"][0]]
    for key in metric_names("test"):
        assert key in metrics, key
    assert all("-test" in key for key in metrics), [k for k in metrics if "-test" not in k]
    for key in ("ml-tr-test_spearman_cosine", "ml-tr-test-retrieval_cosine_mrr@10", "d2l-test-heading_cosine_mrr@10",
                "d2l-test-clustering-chapter_v_measure", "tqp-test_cosine_mrr@10"):
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
    result = run_suite([tiny_model_path], user=user, tasks=["user"], device="cpu")
    metrics = result["metrics"][result["models"][0]]
    assert "user-pairs_spearman_cosine" in metrics and "user-retrieval_cosine_mrr@10" in metrics
    assert "user-pairs_cosine_ap" in metrics
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
    base = {key: 0.5 for key in guarded_metrics("dev")} | {"ml-tr-dev_spearman_cosine": 0.4}
    tuned = dict(base) | {"d2l-dev-heading_cosine_mrr@10": 0.49, "stsb-tr-dev_spearman_cosine": 0.496,
                          "ml-tr-dev_spearman_cosine": 0.1}
    # 0.01 below is harm, 0.004 below is within the tolerance, and the domain metric is not guarded
    assert harm(base, tuned, "dev") == {"d2l-dev-heading_cosine_mrr@10": -0.01}
    assert not any(key.startswith("ml-tr") for key in guarded_metrics("dev"))


def test_tqp_halves_are_disjoint():
    dev, test = _tqp_retrieval("dev"), _tqp_retrieval("test")
    assert dev[0] and test[0]
    assert not (set(dev[0].values()) | set(dev[1].values())) & (set(test[0].values()) | set(test[1].values()))


@pytest.mark.parametrize("split", ["dev", "test"])
def test_tqp_retrieval_never_finds_the_query_itself(split):
    queries, corpus, qrels = _tqp_retrieval(split)
    assert not set(queries.values()) & set(corpus.values())
    pairs = {frozenset(p) for p in zip(tqp("dev")["sentence_0"], tqp("dev")["sentence_1"])}
    for qid, text in queries.items():
        assert qrels[qid] and qrels[qid] <= set(corpus)
        # at least one relevant document is a direct TQP paraphrase of the question
        assert any(frozenset((text, corpus[d])) in pairs for d in qrels[qid])
