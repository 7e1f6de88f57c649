"""anlam.data: the concept bank, the pair builder and pair-file validation."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from anlam.data import GRADE_RANGES, build_corpus, check_pairs, load_bank, load_pairs, mltr_pairs, stsb_tr, tqp
from anlam.data.bank import bank_dir
from anlam.data.builder import build_all
from anlam.errors import AnlamError
from anlam.text import tr_upper


@pytest.fixture(scope="module")
def concepts():
    return load_bank()


@pytest.fixture(scope="module")
def built(concepts):
    return build_all(concepts, seed=42)


def test_bank_meets_the_counts(concepts):
    assert len(concepts) >= 400
    assert len({c.subfield for c in concepts}) >= 15
    for c in concepts:
        assert len(c.paraphrases) >= 5 and len(c.near_misses) >= 3 and len(c.questions) >= 3 and len(c.facts) >= 2
        assert len(c.unnamed_questions) >= 2


def test_every_grade_label_is_in_its_range(built):
    for data in built.values():
        for grade, (lo, hi) in GRADE_RANGES.items():
            labels = data.pairs.loc[data.pairs["grade"] == grade, "label"]
            assert len(labels) > 0, grade
            assert labels.between(lo, hi).all(), grade


def test_grade_semantics(built, concepts):
    subfield = {c.id: c.subfield for c in concepts}
    pairs = pd.concat([d.pairs for d in built.values()])
    same = pairs["concept_0"] == pairs["concept_1"]
    assert same[pairs["grade"].isin(["paraphrase", "same-concept", "near-miss"])].all()
    sib = pairs[pairs["grade"] == "sibling"]
    assert (sib["concept_0"] != sib["concept_1"]).all()
    assert (sib["concept_0"].map(subfield) == sib["concept_1"].map(subfield)).all()
    unrel = pairs[pairs["grade"] == "unrelated"]
    assert (unrel["concept_0"].map(subfield) != unrel["concept_1"].map(subfield)).all()


def test_at_least_40000_distinct_pairs(built):
    pairs = pd.concat([d.pairs for d in built.values()])
    keys = {tuple(sorted(p)) for p in zip(pairs["sentence_0"], pairs["sentence_1"])}
    assert len(keys) == len(pairs) >= 40_000


def test_splits_are_disjoint_by_concept(built):
    concepts_of = {s: set(d.pairs["concept_0"]) | set(d.pairs["concept_1"]) for s, d in built.items()}
    assert not concepts_of["train"] & concepts_of["dev"]
    assert not concepts_of["train"] & concepts_of["test"]
    assert not concepts_of["dev"] & concepts_of["test"]
    sentences = {s: set(d.pairs["sentence_0"]) | set(d.pairs["sentence_1"]) for s, d in built.items()}
    assert not sentences["train"] & sentences["test"]


def test_deterministic_for_a_seed(concepts, built):
    again = build_all(concepts, seed=42)
    other = build_all(concepts, seed=7)
    for split in built:
        pd.testing.assert_frame_equal(built[split].pairs, again[split].pairs)
        pd.testing.assert_frame_equal(built[split].triplets, again[split].triplets)
    assert not built["train"].pairs.equals(other["train"].pairs)


def test_retrieval_and_clustering_sets(built):
    data = built["test"]
    queries, corpus, qrels = data.retrieval["queries"], data.retrieval["corpus"], data.retrieval["qrels"]
    assert set(qrels) == set(queries)
    assert all(doc in corpus for docs in qrels.values() for doc in docs)
    assert data.clustering["label"].nunique() >= 15
    assert {"anchor", "positive", "negative"} <= set(data.triplets.columns)


def test_retrieval_asks_named_and_unnamed_questions_among_definitions_only(concepts, built):
    definitions = {c.definition for c in concepts}
    near_misses = {n for c in concepts for n in c.near_misses} - definitions
    for data in built.values():
        corpus = data.retrieval["corpus"]
        assert set(corpus.values()) <= definitions and not set(corpus.values()) & near_misses
        kinds = {query.rsplit(":", 1)[1][0] for query in data.retrieval["queries"]}
        assert kinds == {"q", "u"}


def test_question_triplets_have_negatives_a_question_can_rule_out(concepts, built):
    """A near-miss is a negative only for a paraphrase anchor, never for a question."""
    questions = {q for c in concepts for q in (*c.questions, *c.unnamed_questions)}
    definitions = {c.definition for c in concepts}
    near_misses = {n for c in concepts for n in c.near_misses} - definitions
    triplets = built["train"].triplets
    asked = triplets[triplets["anchor"].isin(questions)]
    assert len(asked) > 1000 and asked["negative"].isin(definitions).all()
    assert not asked["negative"].isin(near_misses).any()
    assert (asked["negative"] != asked["positive"]).all()
    assert triplets.loc[~triplets["anchor"].isin(questions), "negative"].isin(near_misses).any()


def test_build_writes_folder_and_datasheet(tmp_path):
    stats = build_corpus(tmp_path / "mltr", seed=42)
    out = tmp_path / "mltr"
    assert (out / "README.md").read_text(encoding="utf-8").startswith("# ML-TR")
    assert (out / "label-histogram.png").stat().st_size > 1000
    assert stats["pairs"] >= 40_000
    assert len(mltr_pairs("dev", data_dir=out)) == stats["pairs_per_split"]["dev"]


def test_shipped_mltr_is_current(tmp_path):
    """The data committed in the package is what `anlam data build` makes from the bank."""
    stats = build_corpus(tmp_path / "mltr", seed=42)
    shipped = json.loads((bank_dir().parent / "mltr" / "stats.json").read_text(encoding="utf-8"))
    assert shipped == stats


def _write_bank(tmp_path, mutate):
    source = sorted(bank_dir().glob("*.yaml"))[0]
    entries = yaml.safe_load(source.read_text(encoding="utf-8"))[:3]
    mutate(entries)
    target = tmp_path / source.name
    target.write_text(yaml.safe_dump(entries, allow_unicode=True), encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda e: e[1].pop("definition"), "field definition: missing or empty"),
        (lambda e: e[0].__setitem__("near_misses", e[0]["near_misses"][:2]), "field near_misses: 2 given, at least 3"),
        (lambda e: e[2].__setitem__("id", e[0]["id"]), "duplicate id"),
        (lambda e: e[0].__setitem__("subfield", "baska-alan"), "does not match the file name"),
        (lambda e: e[0].__setitem__("questions", ["", "soru"]), "field questions: expected a list of non-empty strings"),
        (lambda e: e[0].__setitem__("unnamed_questions", e[0]["unnamed_questions"][:1]), "field unnamed_questions: 1 given"),
        (lambda e: e[0]["unnamed_questions"].append(f"{tr_upper(e[0]['name_tr'])} NEDİR"),
         "field unnamed_questions: .* names the concept"),
    ],
)
def test_bank_errors_name_file_and_concept(tmp_path, mutate, message):
    with pytest.raises(AnlamError, match=message):
        load_bank(_write_bank(tmp_path, mutate))


def test_malformed_yaml(tmp_path):
    (tmp_path / "optimisation.yaml").write_text("- id: [bozuk\n", encoding="utf-8")
    with pytest.raises(AnlamError, match="optimisation.yaml: malformed YAML"):
        load_bank(tmp_path)


ROWS = [
    ("Öğrenme oranı adım boyunu belirler.", "Learning rate güncellemelerin büyüklüğünü ayarlar.", "0.9"),
    ("Dropout nöronları rastgele kapatır.", "Batch normalization aktivasyonları ölçekler.", "0.3"),
]


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet", "dataset"])
def test_load_pairs_formats(tmp_path, suffix):
    frame = pd.DataFrame(ROWS, columns=["a", "b", "score"])
    frame["score"] = frame["score"].astype(float) * 5
    path = tmp_path / f"pairs{suffix}"
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".tsv":
        frame.to_csv(path, index=False, sep="\t")
    elif suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
    elif suffix == ".parquet":
        frame.to_parquet(path)
    else:
        from datasets import Dataset

        Dataset.from_pandas(frame).save_to_disk(str(path))
    loaded = load_pairs(path, columns="a,b,score", scale=5)
    assert list(loaded.columns) == ["sentence_0", "sentence_1", "label"]
    assert np.allclose(loaded["label"], [0.9, 0.3])
    assert loaded["sentence_0"][0] == ROWS[0][0]


@pytest.mark.parametrize(
    "rows, header, message",
    [
        ([("a", "b", "0.5")], "sentence_0,sentence_1,skor", "missing column(s) label"),
        ([("Bir cümle.", "Başka cümle.", "yüksek")], None, "row 1: column label: not a number"),
        ([("Bir cümle.", "Başka cümle.", "")], None, "row 1: column label: not a number"),
        ([("Bir cümle.", "Başka cümle.", "0.5"), ("Bir cümle.", "Başka cümle.", "4")], None, "row 2: column label: outside [0, 1]"),
        ([("Bir cümle.", "  ", "0.5")], None, "row 1: column sentence_1: empty sentence"),
        ([("Aynı cümle.", "Aynı cümle.", "1")], None, "row 1: sentence_0 and sentence_1 are identical"),
    ],
)
def test_load_pairs_errors(tmp_path, rows, header, message):
    path = tmp_path / "kotu.csv"
    pd.DataFrame(rows, columns=(header or "sentence_0,sentence_1,label").split(",")).to_csv(path, index=False)
    with pytest.raises(AnlamError) as info:
        load_pairs(path)
    assert str(path) in str(info.value) and message in str(info.value)


def test_check_counts_duplicates_and_cli_exit(tmp_path, cli):
    path = tmp_path / "pairs.csv"
    pd.DataFrame(ROWS + [ROWS[0]], columns=["sentence_0", "sentence_1", "label"]).to_csv(path, index=False)
    report = check_pairs(path)
    assert report.ok and report.duplicates == 1 and report.rows == 3
    result = cli("data", "check", path, "--json")
    assert result.returncode == 0 and json.loads(result.stdout)["duplicates"] == 1
    bad = tmp_path / "bad.csv"
    pd.DataFrame([("x", "y", "7")], columns=["sentence_0", "sentence_1", "label"]).to_csv(bad, index=False)
    assert cli("data", "check", bad).returncode == 1
    assert cli("data", "check", tmp_path / "yok.csv").returncode == 2


def test_invalid_utf8_pair_file(tmp_path):
    path = tmp_path / "bozuk.csv"
    path.write_bytes(b"sentence_0,sentence_1,label\n\xff\xfe,b,0.5\n")
    with pytest.raises(AnlamError, match="invalid UTF-8"):
        load_pairs(path)


def test_public_sets():
    sts = stsb_tr("test")
    assert len(sts) == 1379 and sts["label"].between(0, 1).all()
    assert len(tqp("dev")) == 4588


def test_columns_that_are_not_in_the_file(tmp_path):
    path = tmp_path / "pairs.csv"
    pd.DataFrame(ROWS, columns=["a", "b", "score"]).to_csv(path, index=False)
    with pytest.raises(AnlamError, match=r"no column 'soru' \(columns: a, b, score\); check --columns"):
        load_pairs(path, columns="soru,b,score")
