"""anlam.data.d2l: the real-text extract, its chapter split and the tasks built from it."""

import pandas as pd
import pytest

from anlam.data import d2l
from anlam.errors import AnlamError

TURKISH = """# Doğrusal Bağlanım
:label:`sec_linear_regression`

*Bağlanım*, bir veya daha fazla bağımsız değişken ile bağımlı bir değişken arasındaki ilişkiyi modellemeye yönelik yöntemleri ifade eder. Makine öğrenmesi çoğunlukla tahminle ilgilidir.

```{.python .input}
x = 1

y = 2
```

## Kayıp İşlevi

*Kayıp işlevi*, hedefin gerçek ve tahmini değeri arasındaki mesafeyi ölçer (bkz. :numref:`fig_fit`).

$$l = (\\hat{y} - y)^2$$
"""
ENGLISH = """# Linear Regression
:label:`sec_linear_regression`

*Regression* refers to a set of methods for modeling the relationship between one or more
independent variables and a dependent variable. Machine learning is mostly about prediction.

```{.python .input}
x = 1

y = 2
```

## Loss Function

The *loss function* quantifies the distance between the real and predicted value of the target
(see :numref:`fig_fit`).

$$l = (\\hat{y} - y)^2$$
"""


def test_sections_align_block_for_block_and_drop_markup():
    rows = pd.DataFrame(d2l._section_rows("chapter_x", "linear", TURKISH, ENGLISH))
    assert rows["kind"].tolist() == ["heading", "paragraph", "heading", "paragraph"]
    first = rows.iloc[1]
    assert first["heading"] == "Doğrusal Bağlanım"
    assert first["tr"].startswith("Bağlanım, bir veya") and "*" not in first["tr"]
    assert first["en"].startswith("Regression refers to") and "\n" not in first["en"]
    assert "numref" not in rows.iloc[3]["tr"] and rows.iloc[3]["heading"] == "Kayıp İşlevi"
    # the code cell's blank line splits it in two blocks on both sides; neither is prose
    assert not rows["tr"].str.contains("x = 1").any()


def test_misaligned_sections_keep_turkish_without_english():
    rows = pd.DataFrame(d2l._section_rows("chapter_x", "linear", TURKISH, ENGLISH + "\nExtra block.\n"))
    assert (rows["en"] == "").all() and len(rows) == 4


def test_extract_refuses_a_folder_that_is_not_d2l(tmp_path):
    with pytest.raises(AnlamError, match="not a d2l-tr checkout"):
        d2l.extract(tmp_path)


def test_shipped_extract_splits_by_whole_chapter():
    splits = {split: d2l.d2l_blocks(split) for split in d2l.SPLITS}
    chapters = {split: set(frame["chapter"]) for split, frame in splits.items()}
    assert chapters["dev"] == set(d2l.CHAPTERS["dev"]) and chapters["test"] == set(d2l.CHAPTERS["test"])
    assert not chapters["train"] & (chapters["dev"] | chapters["test"])
    for frame in splits.values():
        assert (frame["kind"] == "paragraph").sum() > 400
    glossary = {split: set(d2l.d2l_glossary(split)["en"]) for split in d2l.SPLITS}
    assert not glossary["train"] & glossary["dev"] and not glossary["dev"] & glossary["test"]
    assert all(len(terms) > 25 for terms in glossary.values())


def test_heading_task_leaves_generic_headings_out():
    queries, corpus, qrels = d2l.heading_retrieval(d2l.d2l_blocks("dev"))
    assert len(queries) > 100
    assert not {"Özet", "Alıştırmalar", "Eğitim"} & set(queries.values())
    assert all(qrels[q] <= set(corpus) for q in queries)


def test_translation_and_first_sentence_tasks_are_one_to_one():
    blocks = d2l.d2l_blocks("test")
    for source in ("en", "tr"):
        queries, corpus, qrels = d2l.translation_retrieval(blocks, source)
        assert len(queries) > 300 and all(len(qrels[q]) == 1 and qrels[q] <= set(corpus) for q in queries)
    queries, corpus, qrels = d2l.first_sentence_retrieval(blocks)
    assert len(queries) == len(corpus) > 200
    assert not set(queries.values()) & set(corpus.values())


def test_first_sentence_split_needs_two_real_sentences():
    assert d2l.split_first_sentence("Kısa cümle. Başka bir cümle.") is None
    first, rest = d2l.split_first_sentence(
        "Kayıp işlevi gerçek değer ile tahmin arasındaki mesafeyi ölçer. Daha küçük değerler daha iyidir ve "
        "mükemmel tahminler sıfır kayba neden olur.")
    assert first.endswith("ölçer.") and rest.startswith("Daha küçük")


def test_training_pairs_come_from_train_chapters_only():
    pairs = d2l.training_pairs(max_per_kind=50)
    assert set(pairs) == {"heading", "section", "translation", "glossary"}
    held_out = set(d2l.d2l_blocks("dev")["tr"]) | set(d2l.d2l_blocks("test")["tr"])
    held_out_terms = set(d2l.d2l_glossary("dev")["en"]) | set(d2l.d2l_glossary("test")["en"])
    for name, frame in pairs.items():
        assert list(frame.columns) == ["anchor", "positive"] and 0 < len(frame) <= 50, name
        assert not (set(frame["anchor"]) | set(frame["positive"])) & held_out, name
    assert not set(pairs["glossary"]["anchor"]) & held_out_terms
