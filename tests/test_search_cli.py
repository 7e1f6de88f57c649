"""``anlam index ...`` / ``anlam search`` end to end, and an ``add`` killed mid-write."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from anlam.data import Document
from anlam.search import Index

TESTS = Path(__file__).resolve().parent


def _write_corpus(folder: Path) -> Path:
    folder.mkdir()
    (folder / "optimizasyon.md").write_text(
        "# Optimizasyon\n\nGradyan inişi parametreleri gradyanın tersi yönünde günceller.\n\n"
        "## Aşırı öğrenme\n\nAşırı öğrenme, modelin eğitim verisini ezberlemesidir. Erken durdurma bunu azaltır.\n",
        encoding="utf-8")
    (folder / "sss.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in [
        {"id": "s1", "title": "Dönüştürücüler", "text": "Dikkat mekanizması her öğenin diğerlerine odağını öğrenir.", "konu": "derin"},
        {"id": "s2", "title": "Karar ağaçları", "text": "Karar ağaçları veriyi özniteliklere göre dallara ayırır.", "konu": "klasik"},
    ]) + "\n", encoding="utf-8")
    (folder / "ek.csv").write_text('id,text,konu\nc1,"Çapraz doğrulama veriyi katlara böler.",klasik\n', encoding="utf-8")
    return folder


@pytest.fixture
def corpus(tmp_path) -> Path:
    return _write_corpus(tmp_path / "belgeler")


@pytest.fixture(scope="module")
def built_once(tmp_path_factory, tiny_embedder) -> Path:
    """One index of the corpus for the module (built through the API with the loaded tiny model)."""
    folder = tmp_path_factory.mktemp("search-cli")
    Index.build(_write_corpus(folder / "belgeler"), folder / "ix", tiny_embedder)
    return folder / "ix"


@pytest.fixture
def built(built_once, tmp_path) -> Path:
    """A copy of that index this test may change."""
    shutil.copytree(built_once, tmp_path / "ix")
    return tmp_path / "ix"


def test_search_table_json_filter_and_batch(cli, built, tmp_path):
    table = cli("search", built, "ASIRI OGRENME", "-k", "2", "--mode", "bm25")
    assert table.returncode == 0, table.stderr
    assert "optimizasyon.md" in table.stdout and "Aşırı öğrenme" in table.stdout

    result = cli("search", built, "asiri ogrenme", "--mode", "bm25", "--json")
    (line,) = result.stdout.splitlines()
    hits = json.loads(line)["hits"]
    assert hits[0]["id"].endswith("optimizasyon.md") and hits[0]["heading"] == "Optimizasyon > Aşırı öğrenme"
    assert set(hits[0]) >= {"id", "passage", "score", "text", "title", "heading", "position", "source", "metadata"}

    result = cli("search", built, "öğrenme", "--filter", "konu=klasik", "--json", "-k", "10")  # hybrid
    assert {h["id"] for h in json.loads(result.stdout)["hits"]} <= {"s2", "c1"}

    queries = tmp_path / "sorular.jsonl"
    queries.write_text('{"query": "karar agaclari", "id": 1}\n\n{"query": "ÇAPRAZ DOĞRULAMA"}\n', encoding="utf-8")
    result = cli("search", built, "--queries", queries, "-k", "1", "--mode", "bm25")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(x) for x in result.stdout.splitlines()]
    assert [(r.get("id"), r["hits"][0]["id"]) for r in rows] == [(1, "s2"), (None, "c1")]
    stdin = cli("search", built, "--queries", "-", "-k", "1", "--mode", "bm25",
                stdin='{"query": "dikkat mekanizmasi"}\n'.encode())
    assert json.loads(stdin.stdout)["hits"][0]["id"] == "s1"


def test_add_delete_info(cli, built, tmp_path):
    extra = tmp_path / "yeni.jsonl"
    extra.write_text('{"id": "s2", "text": "Karar ağaçları budanarak sadeleştirilir."}\n'
                     '{"id": "p1", "text": "Pekiştirmeli öğrenmede ajan ödülle öğrenir."}\n', encoding="utf-8")
    result = cli("index", "add", built, extra, "--json")
    assert json.loads(result.stdout) == {"documents": 2, "replaced": 1, "passages": 2}
    assert "budanarak" in json.loads(cli("search", built, "karar agaclari", "--json", "--mode", "bm25").stdout)["hits"][0]["text"]
    result = cli("index", "delete", built, "p1", "c1")
    assert result.returncode == 0 and "2 document(s) deleted" in result.stdout
    info = json.loads(cli("index", "info", built, "--json").stdout)
    assert (info["documents"], info["passages"]) == (3, 4)
    assert "ann_threshold" in cli("index", "info", built).stdout


def test_bad_input_exits_2_with_a_message(cli, built, corpus, tiny_model_path, tmp_path):
    assert cli("search", tmp_path / "yok", "soru").stderr.strip() == f"anlam: error: {tmp_path / 'yok'}: no such index"
    assert cli("index", "delete", built, "yok-boyle-belge").returncode == 2
    bad = tmp_path / "sorular.jsonl"
    bad.write_text('{"query": "tamam"}\n{"soru": "x"}\n', encoding="utf-8")
    result = cli("search", built, "--queries", bad)
    assert result.returncode == 2 and f"{bad}: line 2: no field 'query' (fields: soru)" in result.stderr
    assert "give either a QUERY or --queries" in cli("search", built).stderr
    empty = tmp_path / "bos"
    empty.mkdir()
    result = cli("index", "build", empty, "--out", tmp_path / "bos-ix", "--model", tiny_model_path)
    assert result.returncode == 2 and "no documents with text to index" in result.stderr
    assert not (tmp_path / "bos-ix" / "manifest.json").exists()


def test_build_warns_about_invalid_utf8_or_fails_with_strict(cli, corpus, tiny_model_path, tmp_path, caplog):
    (corpus / "bozuk.txt").write_bytes(b"Bozuk \xff bayt.")
    result = cli("index", "build", corpus, "--out", tmp_path / "ix", "--model", tiny_model_path, "--json")
    assert result.returncode == 0, result.stderr
    assert f"{corpus / 'bozuk.txt'}: line 1: invalid UTF-8; skipped" in caplog.text
    info = json.loads(result.stdout)
    assert (info["documents"], info["passages"], info["vector_index"]) == (4, 5, "flat, exact")
    result = cli("index", "build", corpus, "--out", tmp_path / "ix2", "--model", tiny_model_path, "--strict")
    assert result.returncode == 2 and "bozuk.txt: line 1: invalid UTF-8" in result.stderr
    assert not (tmp_path / "ix2").exists() or not any((tmp_path / "ix2").glob("manifest.json"))


def test_another_model_is_refused(cli, built, tiny_model_path, tmp_path):
    other = tmp_path / "baska-model"
    shutil.copytree(tiny_model_path, other)
    config = json.loads((other / "config_sentence_transformers.json").read_text(encoding="utf-8"))
    config["prompts"]["query"] = "soru: "
    (other / "config_sentence_transformers.json").write_text(json.dumps(config), encoding="utf-8")
    result = cli("search", built, "gradyan", "--model", other)
    assert result.returncode == 2 and "gives different embeddings" in result.stderr
    assert cli("search", built, "gradyan", "--model", other, "--mode", "bm25").returncode == 0  # BM25 needs no model


# -- a real kill during add --------------------------------------------------------------------

ADD = """
import sys
sys.path.insert(0, sys.argv[3])
from test_search import HashEmbedder
from anlam.search import Index
Index.load(sys.argv[1], HashEmbedder()).add([sys.argv[2]])
"""


def _random_docs(prefix: str, n: int, seed: int) -> list[Document]:
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcçdefgğhıijklmnoöprsştuüvyz"))
    words = ["".join(w) for w in letters[rng.integers(0, len(letters), (3000, 7))]]
    picks = rng.integers(0, len(words), (n, 40))
    return [Document(f"{prefix}{i}", " ".join(words[j] for j in row) + ".") for i, row in enumerate(picks)]


@pytest.mark.parametrize("marker", ["", "vectors.faiss"])  # as the new generation appears; mid-way through it
def test_add_killed_mid_write_leaves_the_previous_index(tmp_path, marker):
    from test_search import HashEmbedder

    path = tmp_path / "ix"
    old = _random_docs("eski", 2000, 0)
    Index.build(old, path, HashEmbedder())
    new = tmp_path / "yeni.jsonl"
    new.write_text("\n".join(json.dumps({"id": d.id, "text": d.text}) for d in _random_docs("yeni", 2000, 1)) + "\n")

    process = subprocess.Popen([sys.executable, "-c", ADD, str(path), str(new), str(TESTS)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    target = path / "g000002" / marker
    deadline = time.monotonic() + 120
    while process.poll() is None and not target.exists() and time.monotonic() < deadline:
        time.sleep(0.002)
    if process.poll() is not None:
        pytest.fail(f"add ended before the kill (rc {process.returncode}): {process.stderr.read().decode()[-500:]}")
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL

    index = Index.load(path, HashEmbedder())
    info = index.info()
    assert (info["generation"], info["documents"], info["passages"], info["vectors"]) == ("g000001", 2000, 2000, 2000)
    assert len(index.lexical.ids) == 2000
    assert index.search(old[7].text, k=1, mode="dense")[0].id == "eski7"
    assert index.search(old[7].text, k=1, mode="bm25")[0].id == "eski7"

    index.add([Document("sonra", "Kesintiden sonra eklenen belge.")])  # the next write cleans up and succeeds
    # the killed write's g000002 was replaced; g000001 stays as the generation before the current one
    assert sorted(p.name for p in path.iterdir() if p.name.startswith("g")) == ["g000001", "g000002"]
    assert Index.load(path).info()["documents"] == 2001
