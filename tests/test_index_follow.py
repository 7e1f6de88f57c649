"""Readers that follow an index: ``Index.latest``, a real server beside real ``anlam index add``/``delete``
processes, and the index files a reader trusts (the manifest's generation, the letter table, BM25)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from anlam.data import Document
from anlam.errors import AnlamError
from anlam.search import Index
from anlam.search.letters import Letters
from anlam.search.lexical import Lexical

from test_search import HashEmbedder, docs
from servers import wait_until_serving

ANLAM = [sys.executable, "-m", "anlam"]
NEW = Document("yeni", "Pekiştirmeli öğrenme, ajanın ödül sinyaliyle deneme yanılma yoluyla öğrenmesidir.")


def generations(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir() if p.name.startswith("g"))


# -- Index.latest ------------------------------------------------------------------------------


def test_a_reader_follows_a_new_generation_and_keeps_its_own(tmp_path):
    Index.build(docs(), tmp_path / "ix", HashEmbedder())
    reader = Index.load(tmp_path / "ix", HashEmbedder())
    assert reader.latest() is reader  # nothing written: the same object

    Index.load(tmp_path / "ix", HashEmbedder()).add([NEW])
    fresh = reader.latest()
    assert fresh is not reader and fresh.manifest["generation"] == "g000002"
    assert fresh.embedder is reader.embedder  # the model is shared, never loaded again
    for mode in ("dense", "bm25", "hybrid"):
        assert fresh.search("pekiştirmeli öğrenme ödül", k=1, mode=mode)[0].id == "yeni"
        assert "yeni" not in {h.id for h in reader.search("pekistirmeli ogrenme odul", k=10, mode=mode)}
    assert fresh.latest() is fresh


def test_a_reader_whose_generation_was_removed_still_searches(tmp_path):
    """Two writes remove the generation an idle reader loaded; BM25 and the letters were loaded with it."""
    Index.build(docs(), tmp_path / "ix", HashEmbedder())
    reader = Index.load(tmp_path / "ix", HashEmbedder())
    writer = Index.load(tmp_path / "ix", HashEmbedder())
    writer.add([NEW])
    writer.delete(["gpu"])
    assert generations(tmp_path / "ix") == ["g000002", "g000003"]  # g000001, the reader's, is gone
    for mode in ("dense", "bm25", "hybrid"):
        assert reader.search("AŞIRI ÖĞRENME", k=1, mode=mode)[0].id == "asiri"
    newest = reader.latest()
    assert newest.manifest["generation"] == "g000003"
    expected = ({d.id for d in docs()} | {"yeni"}) - {"gpu"}
    assert {h.id for h in newest.search("gpu belleği pekiştirmeli", k=10)} == expected


def test_a_rebuild_with_another_model_is_checked_again(tmp_path):
    Index.build(docs(), tmp_path / "ix", HashEmbedder())
    reader = Index.load(tmp_path / "ix", HashEmbedder())
    reader.search("gradyan", k=1, mode="dense")  # model checked against g000001
    Index.build(docs(), tmp_path / "ix", HashEmbedder(salt="başka"), overwrite=True)
    fresh = reader.latest()
    assert fresh.search("gradyan", k=1, mode="bm25")[0].id == "gradyan"
    with pytest.raises(AnlamError, match="gives different embeddings"):
        fresh.search("gradyan", k=1, mode="dense")


# -- trust: what the manifest names, what a generation must hold -------------------------------


@pytest.mark.parametrize("name", ["../disari", "/etc", "g000001/../../disari", "g000001\n", "", None, 7])
def test_the_manifest_generation_must_be_a_generation_folder_name(tmp_path, name):
    Index.build(docs(), tmp_path / "ix", HashEmbedder())
    (tmp_path / "disari").mkdir()  # what "../disari" would have read
    manifest = tmp_path / "ix" / "manifest.json"
    data = json.loads(manifest.read_text(encoding="utf-8"))
    manifest.write_text(json.dumps({**data, "generation": name}), encoding="utf-8")
    with pytest.raises(AnlamError, match=r"manifest\.json: generation .* is not a generation folder name"):
        Index.load(tmp_path / "ix", HashEmbedder())


def test_a_missing_letter_table_is_an_error_naming_the_file(tmp_path):
    with pytest.raises(AnlamError, match=r"words\.json: missing"):
        Letters.load(tmp_path)
    index = Index.build(docs(), tmp_path / "ix", HashEmbedder())
    words = tmp_path / "ix" / index.manifest["generation"] / "words.json"
    assert Letters.load(words.parent).restore("asiri ogrenme") == "aşırı öğrenme"  # a real table still loads
    words.unlink()
    with pytest.raises(AnlamError, match=r"g000001/words\.json: missing; the index is incomplete"):
        Index.load(tmp_path / "ix", HashEmbedder())
    words.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(AnlamError, match=r"words\.json: not a JSON object of word counts"):
        Letters.load(words.parent)


def test_missing_bm25_or_vectors_are_errors_naming_the_file(tmp_path):
    Index.build(docs(), tmp_path / "ix", HashEmbedder())
    folder = tmp_path / "ix" / "g000001"
    (folder / "bm25" / "ids.npy").unlink()
    with pytest.raises(AnlamError, match=r"bm25/ids\.npy: missing"):
        Lexical.load(folder / "bm25")
    (folder / "vectors.faiss").unlink()
    with pytest.raises(AnlamError, match=r"g000001/vectors\.faiss: missing"):
        Index.load(tmp_path / "ix")


# -- a real server beside real writers ----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Poller(threading.Thread):
    """Searches every 0.5 s; records (time, status, whether ``yeni`` is among the hits)."""

    def __init__(self, base: str) -> None:
        super().__init__(daemon=True)
        self.base, self.seen, self.stop = base, [], threading.Event()

    def run(self) -> None:
        import httpx

        with httpx.Client(timeout=30) as client:
            while not self.stop.is_set():
                try:
                    response = client.post(f"{self.base}/v1/search", json={"query": "pekiştirmeli öğrenme", "k": 20})
                except httpx.TransportError:  # a dropped connection counts as a failed search
                    self.seen.append((time.monotonic(), 0, False))
                else:
                    found = response.status_code == 200 and any(
                        h["id"] == "yeni" for h in response.json()["data"][0]["hits"])
                    self.seen.append((time.monotonic(), response.status_code, found))
                self.stop.wait(0.5)

    def wait_for(self, found: bool, since: float, limit: float = 60) -> float:
        """Seconds from ``since`` to the first answer after it with ``found``."""
        while time.monotonic() < since + limit:
            hit = next((t for t, status, f in list(self.seen) if t > since and f == found), None)
            if hit is not None:
                return hit - since
            time.sleep(0.05)
        pytest.fail(f"no answer with found={found} within {limit} s")


def run_cli(*args: str) -> float:
    """Run ``anlam ARGS`` as its own process; the moment it exited."""
    done = subprocess.run([*ANLAM, *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return time.monotonic()


def test_a_server_follows_index_add_and_delete_run_beside_it(tmp_path, tiny_embedder):
    httpx = pytest.importorskip("httpx")
    path = tmp_path / "ix"
    Index.build(docs(), path, tiny_embedder)
    extra = tmp_path / "yeni.jsonl"
    extra.write_text(json.dumps({"id": NEW.id, "text": NEW.text}, ensure_ascii=False) + "\n", encoding="utf-8")
    port, log = free_port(), tmp_path / "server.log"
    with open(log, "w", encoding="utf-8") as out:
        server = subprocess.Popen([*ANLAM, "serve", "--index", str(path), "--port", str(port), "--threads", "1"],
                                  stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    base = f"http://127.0.0.1:{port}"
    poller = Poller(base)
    try:
        wait_until_serving(server, base, log)
        poller.start()

        added = run_cli("index", "add", str(path), str(extra))  # while the server answers every 0.5 s
        after_add = poller.wait_for(True, added)
        assert httpx.get(f"{base}/healthz").json()["generation"] == "g000002"

        deleted = run_cli("index", "delete", str(path), "yeni")
        after_delete = poller.wait_for(False, deleted)
        assert generations(path) == ["g000002", "g000003"]  # the server's first generation is gone
    finally:
        poller.stop.set()
        poller.join(10)
        server.terminate()
        server.wait(30)
    statuses = [status for _, status, _ in poller.seen]
    print(f"{len(statuses)} searches; new passage served {after_add:.2f} s after add exited, "
          f"gone {after_delete:.2f} s after delete exited")
    assert statuses and set(statuses) == {200}, statuses
    assert after_add < 5 and after_delete < 5  # the target: served within 5 s of the write
    assert "Traceback" not in log.read_text(encoding="utf-8")
