"""``anlam.data.readers``: every format read the same way, and every mistake named in one style."""

from __future__ import annotations

import io
import json
import logging
import re
import sys
import unicodedata

import numpy as np
import pytest

from anlam.data import Document, read_columns, read_documents, read_records, read_table, read_texts
from anlam.errors import AnlamError
from anlam.export import unique_texts

# Turkish as it is really typed: suffix apostrophes, dotted capital İ, dotless ı, a comma inside a text
TEXTS = ["GPU'ların belleği yetmiyor, ne yapmalı?", "İSTANBUL'daki sunucu ısınıyor.", "Aşırı öğrenme nasıl önlenir?"]


def _write_jsonl(path, records):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def _stdin(monkeypatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))


# -- every format --------------------------------------------------------------------------------


def test_plain_lines_skip_blank_lines_and_keep_the_text_as_written(tmp_path):
    path = tmp_path / "derlem.txt"
    path.write_bytes(("\ufeff" + TEXTS[0] + "\r\n\r\n  " + TEXTS[1] + "\n" + TEXTS[2]).encode())
    assert read_texts(path) == [TEXTS[0], "  " + TEXTS[1], TEXTS[2]]  # the byte-order mark and \r go, nothing else
    lines = tmp_path / "derlem.jsonl"
    lines.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    assert read_texts(lines, plain=True) == TEXTS  # plain wins over the suffix


def test_json_lines_by_field(tmp_path):
    path = _write_jsonl(tmp_path / "derlem.jsonl", [{"metin": t, "n": i} for i, t in enumerate(TEXTS)])
    path.write_text(path.read_text(encoding="utf-8") + "\n\n", encoding="utf-8")  # trailing blank lines are no record
    assert read_texts(path, "metin") == TEXTS
    assert read_texts(path, column=None) == TEXTS  # every text field; the numbers are not text
    assert read_table(path)["n"].tolist() == [0, 1, 2]


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".json", ".parquet", "dataset"])
def test_tables_by_column(tmp_path, suffix):
    import pandas as pd

    frame = pd.DataFrame({"soru": TEXTS, "cevap": [t.upper() for t in TEXTS], "puan": [1, 2, 3]})
    path = tmp_path / f"tablo{suffix}"
    if suffix in (".csv", ".tsv"):
        frame.to_csv(path, index=False, sep="," if suffix == ".csv" else "\t")
    elif suffix == ".json":
        frame.to_json(path, orient="records", force_ascii=False)
    elif suffix == ".parquet":
        frame.to_parquet(path)
    else:
        from datasets import Dataset

        Dataset.from_pandas(frame).save_to_disk(str(path))
    assert read_texts(path, "soru") == TEXTS
    assert read_columns(path, ["cevap", "soru"]) == [[t.upper() for t in TEXTS], TEXTS]
    assert list(read_table(path).columns) == ["soru", "cevap", "puan"]
    every = read_texts(path, column=None)
    assert every[:6] == TEXTS + [t.upper() for t in TEXTS]  # column by column; a CSV's numbers are text too


def test_standard_input_is_json_lines_or_plain_lines(monkeypatch):
    _stdin(monkeypatch, "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in TEXTS).encode())
    assert read_texts("-") == TEXTS
    _stdin(monkeypatch, "\n".join(TEXTS).encode())
    assert read_texts("-", plain=True) == TEXTS
    _stdin(monkeypatch, b'{"query": "dikkat", "id": 7}\n')
    assert read_records("-", "query") == [{"query": "dikkat", "id": 7}]


def test_records_keep_their_other_fields(tmp_path):
    path = tmp_path / "sorular.csv"
    path.write_text("query,id\n\"GPU'lar neden ısınır?\",q1\n", encoding="utf-8")
    assert read_records(path, "query") == [{"query": "GPU'lar neden ısınır?", "id": "q1"}]


def test_a_missing_cell_in_a_table_or_field_in_a_line_is_named(tmp_path):
    path = tmp_path / "eksik.csv"
    path.write_text("a,b\nbir,iki\nüç\n", encoding="utf-8")  # row 2 has no second cell
    with pytest.raises(AnlamError, match=re.escape(f"{path}: row 2: empty text in column 'b'")):
        read_columns(path, ["a", "b"])
    lines = _write_jsonl(tmp_path / "eksik.jsonl", [{"a": "bir", "b": "iki"}, {"a": "üç"}])
    with pytest.raises(AnlamError, match=re.escape(f"{lines}: line 2: no field 'b' (fields: a)")):
        read_columns(lines, ["a", "b"])


# -- one error style ------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    for name in ("yok.txt", "yok.jsonl", "yok.csv", "yok.parquet"):
        with pytest.raises(AnlamError, match=re.escape(f"{tmp_path / name}: no such file or folder")):
            read_texts(tmp_path / name)


def test_unknown_column_lists_the_available_ones(tmp_path):
    path = tmp_path / "derlem.csv"
    path.write_text("metin,konu\nbir,x\n", encoding="utf-8")
    with pytest.raises(AnlamError, match=re.escape(f"{path}: no column 'text' (columns: metin, konu)")):
        read_texts(path)
    with pytest.raises(AnlamError, match=re.escape("no column 'a', 'b' (columns: metin, konu); name them")):
        read_columns(path, ["metin", "a", "b"], hint="; name them")
    lines = _write_jsonl(tmp_path / "derlem.jsonl", [{"metin": "bir"}])
    with pytest.raises(AnlamError, match=re.escape(f"{lines}: no field 'text' (fields: metin)")):
        read_texts(lines)


def test_empty_text_names_the_data_row(tmp_path):
    path = tmp_path / "derlem.csv"
    rows = [f"satır {i}" for i in range(1, 7)] + ["   "]
    path.write_text("text\n" + "\n".join(f'"{r}"' for r in rows) + "\n", encoding="utf-8")
    with pytest.raises(AnlamError, match=re.escape(f"{path}: row 7: empty text in column 'text'")):
        read_texts(path)
    lines = tmp_path / "derlem.jsonl"
    lines.write_text('{"text": "bir"}\n\n{"text": ""}\n{"text": 5}\n', encoding="utf-8")
    with pytest.raises(AnlamError, match=re.escape(f"{lines}: line 3: empty text in field 'text'")):
        read_texts(lines)
    lines.write_text('{"text": "bir"}\n{"text": 5}\n', encoding="utf-8")
    with pytest.raises(AnlamError, match=re.escape(f"{lines}: line 2: field 'text' holds 5, not text")):
        read_texts(lines)


def test_bad_json_line_names_the_line(tmp_path, monkeypatch):
    path = tmp_path / "derlem.jsonl"
    path.write_text('{"text": "bir"}\n\n{"text": "iki"\n', encoding="utf-8")
    with pytest.raises(AnlamError, match=re.escape(f"{path}: line 3: not JSON (Expecting ',' delimiter)")):
        read_texts(path)
    with pytest.raises(AnlamError, match=re.escape(f"{path}: line 3: not JSON")):
        read_table(path)
    _stdin(monkeypatch, b'["bir"]\n')
    with pytest.raises(AnlamError, match=re.escape("<stdin>: line 1: expected a JSON object, not list")):
        read_records("-", "query")
    array = tmp_path / "derlem.json"
    array.write_text('{"text": "bir"}', encoding="utf-8")
    with pytest.raises(AnlamError, match="expected a JSON array of objects"):
        read_texts(array)


@pytest.mark.parametrize("name, content, line", [
    ("bozuk.txt", b"bir\niki \xff\n", 2),
    ("bozuk.jsonl", b'{"text": "bir"}\n{"text": "iki \xff"}\n', 2),
    ("bozuk.csv", b"text\nbir\n\xfe\n", 3),
])
def test_non_utf8_names_the_line(tmp_path, name, content, line):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(AnlamError, match=re.escape(f"{path}: line {line}: invalid UTF-8")):
        read_texts(path)


def test_malformed_tables(tmp_path):
    path = tmp_path / "tablo.csv"
    path.write_text("a,b\nbir,iki,üç\n", encoding="utf-8")
    with pytest.raises(AnlamError, match=re.escape(f"{path}: row 1: 3 cells for 2 columns")):
        read_table(path)
    path.write_text("a,a\nbir,iki\n", encoding="utf-8")
    with pytest.raises(AnlamError, match="column 'a' appears twice"):
        read_table(path)
    path.write_text("a\n", encoding="utf-8")
    with pytest.raises(AnlamError, match=re.escape(f"{path}: no texts")):
        read_columns(path, ["a"])
    with pytest.raises(AnlamError, match=re.escape(f"{path}: no texts")):
        read_texts(path, "a")
    sheet = tmp_path / "tablo.xlsx"
    sheet.write_bytes(b"PK")
    with pytest.raises(AnlamError, match=re.escape(f"{sheet}: unsupported format '.xlsx'")):
        read_texts(sheet)
    broken = tmp_path / "bozuk.parquet"
    broken.write_bytes(b"PAR1 not parquet")
    with pytest.raises(AnlamError, match=re.escape(f"{broken}: cannot read Parquet file")):
        read_table(broken)


# -- Turkish --------------------------------------------------------------------------------------


def test_turkish_text_survives_every_format(tmp_path):
    import pandas as pd

    frame = pd.DataFrame({"text": TEXTS})
    frame.to_csv(tmp_path / "a.csv", index=False)
    frame.to_parquet(tmp_path / "a.parquet")
    _write_jsonl(tmp_path / "a.jsonl", [{"text": t} for t in TEXTS])
    (tmp_path / "a.txt").write_text("\n".join(TEXTS), encoding="utf-8")
    for name in ("a.csv", "a.parquet", "a.jsonl", "a.txt"):
        texts = read_texts(tmp_path / name)
        assert texts == TEXTS, name
        assert "GPU'ların" in texts[0] and texts[1].startswith("\u0130")  # the apostrophe and the dotted İ kept


def test_texts_come_back_as_written_and_are_normalised_where_compared(tmp_path):
    decomposed = unicodedata.normalize("NFD", "İşlemci ısınıyor.")  # I + combining dot, s + cedilla
    assert decomposed != "İşlemci ısınıyor."
    path = _write_jsonl(tmp_path / "nfd.jsonl", [{"text": decomposed, "title": decomposed}])
    assert read_texts(path) == [decomposed]  # the reader does not change a text ...
    assert unique_texts(read_texts(path) * 2) == ["İşlemci ısınıyor."]  # ... an export's corpus is NFC, once
    (doc,) = read_documents([path])
    assert doc.title == "İşlemci ısınıyor." and doc.text == decomposed  # titles are cleaned, texts chunked later


# -- documents --------------------------------------------------------------------------------------


def test_documents_name_rows_and_lines(tmp_path, caplog):
    table = tmp_path / "belgeler.csv"
    table.write_text('id,text,konu\n,"GPU\'lar hızlıdır.",donanım\nd2,,boş\n', encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        docs = read_documents([table])
    assert [(d.id, d.metadata) for d in docs] == [("belgeler.csv:1", {"konu": "donanım"})]  # empty id: row number
    assert "document 'd2' has no text, skipped" in caplog.text
    lines = _write_jsonl(tmp_path / "belgeler.jsonl", [{"text": "bir"}, {"text": "iki", "title": 3}])
    with pytest.raises(AnlamError, match=re.escape(f"{lines}: line 2: field 'title' holds 3, not text")):
        read_documents([lines])
    assert read_documents([_write_jsonl(lines, [{"id": "a", "text": "bir"}])]) == [
        Document("a", "bir", source=str(lines))]


def test_invalid_utf8_skips_a_csv_of_documents_or_fails_with_strict(tmp_path, caplog):
    table = tmp_path / "bozuk.csv"
    table.write_bytes(b"text\nbir\n\xff\n")
    with caplog.at_level(logging.WARNING):
        assert read_documents([table]) == []
    assert f"{table}: line 3: invalid UTF-8; skipped" in caplog.text
    with pytest.raises(AnlamError, match=re.escape(f"{table}: line 3: invalid UTF-8")):
        read_documents([table], strict=True)


# -- the CLI reads with the same functions -----------------------------------------------------------


def test_cli_errors_come_from_the_reader(cli, tmp_path):
    corpus = tmp_path / "derlem.csv"
    corpus.write_text("metin\nbir\n", encoding="utf-8")
    result = cli("dedup", corpus)  # refused before any model is loaded
    assert result.returncode == 2 and f"{corpus}: no column 'text' (columns: metin)" in result.stderr
    result = cli("encode", stdin=b"bir\n")
    assert result.returncode == 2 and "<stdin>: line 1: not JSON" in result.stderr and "--plain" in result.stderr


def test_cli_encode_reads_a_file_by_its_suffix(cli, tiny_model_path, tmp_path):
    (tmp_path / "a.txt").write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    _write_jsonl(tmp_path / "a.jsonl", [{"text": t} for t in TEXTS])
    (tmp_path / "a.csv").write_text("text\n" + "\n".join(f'"{t}"' for t in TEXTS) + "\n", encoding="utf-8")
    vectors = []
    for name in ("a.txt", "a.jsonl", "a.csv"):
        result = cli("encode", "--model", tiny_model_path, "--file", tmp_path / name)
        assert result.returncode == 0, result.stderr
        vectors.append(np.array([json.loads(line) for line in result.stdout.splitlines()]))
    assert vectors[0].shape == (3, 32) and np.allclose(vectors[0], vectors[1]) and np.allclose(vectors[0], vectors[2])
