"""The HTTP server, live: uvicorn on a free loopback port, called with the real ``openai`` client and httpx."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager

import numpy as np
import pytest

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")
openai = pytest.importorskip("openai")

from anlam.apps import Calibration  # noqa: E402
from anlam.errors import AnlamError  # noqa: E402
from anlam.models import Embedder, model_checksum  # noqa: E402
from anlam.serve import MicroBatcher, QueueFull, ServeSettings, create_app, run_server  # noqa: E402
from servers import wait_until_serving  # noqa: E402

KEY = "sk-anlam-test-1234"
AUTH = {"Authorization": f"Bearer {KEY}"}
TEXTS = ["GPU'ların belleği büyük modellere yetmiyor.", "AŞIRI ÖĞRENME nedir?", "asiri ogrenme nasil onlenir",
         "Düzenlileştirme, modelin eğitim verisini ezberlemesini önler."]
ORIGIN = "https://uygulama.example.com"
CALIBRATION = Calibration(weight=20.0, bias=-10.0, threshold=0.5, prompt="query")
LONG = " ".join(["Derin öğrenme modelleri büyük veri ister."] * 30)  # over the tiny model's 128 tokens


@contextmanager
def live(app):
    """``app`` served by uvicorn in a thread on a free loopback port; yields the base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(15)


class Gate:
    """Wraps an embedder's encode so a test can hold the model thread on its first call."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = Embedder(embedder.model, embedder.path)  # a second handle on the same weights
        self.entered, self.release = threading.Event(), threading.Event()
        self.batches: list[int] = []
        inner = self.embedder.encode

        def encode(texts, **kwargs):
            self.batches.append(len(texts))
            self.entered.set()
            assert self.release.wait(30)
            return inner(texts, **kwargs)

        self.embedder.encode = encode


def wait_queued(base: str, n: int) -> None:
    deadline = time.monotonic() + 20
    while httpx.get(f"{base}/healthz").json()["queued"] < n:
        assert time.monotonic() < deadline, f"never saw {n} queued request(s)"
        time.sleep(0.01)


@pytest.fixture(scope="module")
def server(tiny_embedder):
    settings = ServeSettings(api_key=KEY, max_inputs=8, max_chars=200, cors_origins=[ORIGIN])
    app = create_app(tiny_embedder, settings, calibration=CALIBRATION)
    with live(app) as base:
        yield base


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=f"{server}/v1", api_key=KEY, max_retries=0)


def post(base: str, path: str, body: dict, headers: dict | None = None) -> httpx.Response:
    return httpx.post(f"{base}/v1/{path}", json=body, headers=AUTH if headers is None else headers, timeout=30)


def error_of(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


# -- the openai client -------------------------------------------------------------------------


def test_openai_client_gets_the_embedders_vectors(client, tiny_embedder):
    response = client.embeddings.create(model="anything", input=TEXTS)  # the client asks for base64 itself
    got = np.array([d.embedding for d in response.data], dtype=np.float32)
    np.testing.assert_allclose(got, tiny_embedder.encode(TEXTS, prompt_name="query"), atol=1e-5)
    assert [d.index for d in response.data] == list(range(len(TEXTS)))
    assert response.model == "model"  # the model folder's name, whatever the request said
    assert response.usage.prompt_tokens == response.usage.total_tokens == sum(tiny_embedder.token_counts(TEXTS, "query"))

    as_float = client.embeddings.create(model="anything", input=TEXTS, encoding_format="float")
    np.testing.assert_allclose(np.array([d.embedding for d in as_float.data]), got, atol=1e-6)

    single = client.embeddings.create(model="anything", input=TEXTS[1])
    assert len(single.data) == 1
    np.testing.assert_allclose(single.data[0].embedding, got[1], atol=1e-5)


def test_dimensions_truncate_and_renormalise(client, tiny_embedder):
    response = client.embeddings.create(model="m", input=TEXTS[:2], dimensions=8)
    got = np.array([d.embedding for d in response.data])
    assert got.shape == (2, 8)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(got, tiny_embedder.encode(TEXTS[:2], prompt_name="query", truncate_dim=8), atol=1e-5)


def test_input_type_chooses_the_prompt(client, tiny_embedder):
    passage = client.embeddings.create(model="m", input=TEXTS[3], extra_body={"input_type": "passage"})
    bare = client.embeddings.create(model="m", input=TEXTS[3], extra_body={"input_type": "none"})
    np.testing.assert_allclose(passage.data[0].embedding, tiny_embedder.encode([TEXTS[3]], prompt_name="passage")[0], atol=1e-5)
    np.testing.assert_allclose(bare.data[0].embedding, tiny_embedder.encode([TEXTS[3]], prompt="")[0], atol=1e-5)
    assert passage.usage.prompt_tokens > bare.usage.prompt_tokens  # the "passage: " prefix is counted


def test_models_list_and_health(client, server):
    models = client.models.list()
    assert [m.id for m in models.data] == ["model"]  # the tiny model's folder name
    assert client.models.retrieve("model").id == "model"
    health = httpx.get(f"{server}/healthz")  # no key needed
    assert health.status_code == 200 and health.json()["status"] == "ok" and health.json()["dim"] == 32
    assert httpx.get(f"{server}/openapi.json").json()["paths"].keys() >= {"/v1/embeddings", "/v1/similarity",
                                                                          "/v1/paraphrase", "/v1/search"}


# -- raw HTTP: formats and errors --------------------------------------------------------------


def test_base64_roundtrip_equals_float(server):
    as_float = post(server, "embeddings", {"input": TEXTS, "model": "m"}).json()
    as_b64 = post(server, "embeddings", {"input": TEXTS, "model": "m", "encoding_format": "base64"}).json()
    for f, b in zip(as_float["data"], as_b64["data"]):
        decoded = np.frombuffer(base64.b64decode(b["embedding"]), dtype="<f4")
        assert np.array_equal(decoded, np.array(f["embedding"], dtype=np.float32))


def test_wrong_or_missing_key_is_401(server, tiny_model_path):
    for headers in ({"Authorization": "Bearer sk-wrong"}, {}, {"Authorization": KEY}):
        response = post(server, "embeddings", {"input": "merhaba"}, headers=headers)
        assert error_of(response, 401)["code"] == "invalid_api_key"
        assert response.headers["www-authenticate"] == "Bearer"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{server}/v1", api_key="sk-wrong", max_retries=0).embeddings.create(model="m", input="x")


def test_limits_name_the_limit(server):
    error = error_of(post(server, "embeddings", {"input": ["kısa cümle"] * 9}), 413)
    assert error["code"] == "too_many_inputs" and error["param"] == "input" and "--max-inputs" in error["message"]
    error = error_of(post(server, "embeddings", {"input": ["kısa", "ğ" * 201]}), 413)
    assert error["code"] == "input_too_long" and error["param"] == "input[1]" and "200" in error["message"]
    assert error_of(post(server, "embeddings", {"input": []}), 422)["code"] == "empty_input"
    assert error_of(post(server, "embeddings", {"input": ["tamam", "  "]}), 422)["param"] == "input[1]"
    assert error_of(post(server, "embeddings", {"input": "x", "dimensions": 33}), 422)["param"] == "dimensions"
    mixed = error_of(post(server, "embeddings", {"input": [101, "metin"]}), 422)
    assert mixed["param"] == "input" and "list of token ids" in mixed["message"]
    assert error_of(post(server, "embeddings", {"input": "x", "input_type": "soru"}), 422)["param"] == "input_type"
    assert error_of(post(server, "nereye", {}), 404)["type"] == "not_found_error"
    huge = httpx.post(f"{server}/v1/embeddings", content=b"{" + b" " * 200_000 + b"}", headers=AUTH)
    assert error_of(huge, 413)["code"] == "body_too_large"
    chunked = httpx.post(f"{server}/v1/embeddings", content=(b" " * 1000 for _ in range(200)), headers=AUTH)
    assert error_of(chunked, 413)["code"] == "body_too_large"
    small_chunked = httpx.post(f"{server}/v1/embeddings", content=iter([b'{"input": ', b'"merhaba"}']),
                                  headers={**AUTH, "Content-Type": "application/json"})
    assert small_chunked.status_code == 200 and len(small_chunked.json()["data"]) == 1


def test_similarity_matrix_and_pairs(server, tiny_embedder):
    body = post(server, "similarity", {"texts": TEXTS[:3]}).json()
    vectors = tiny_embedder.encode(TEXTS[:3], prompt_name="query")
    np.testing.assert_allclose(body["matrix"], vectors @ vectors.T, atol=1e-5)
    scores = post(server, "similarity", {"pairs": [[TEXTS[0], TEXTS[1]], [TEXTS[2], TEXTS[2]]]}).json()["scores"]
    np.testing.assert_allclose(scores, [float(vectors[0] @ vectors[1]), 1.0], atol=1e-5)
    assert error_of(post(server, "similarity", {"texts": TEXTS, "pairs": [["a", "b"]]}), 422)["param"] == "texts"
    assert error_of(post(server, "similarity", {"pairs": [["a", ""]]}), 422)["param"] == "pairs[0][1]"


def test_paraphrase_uses_the_calibration(server, tiny_embedder):
    pairs = [[TEXTS[0], TEXTS[0]], [TEXTS[1], TEXTS[3]]]
    body = post(server, "paraphrase", {"pairs": pairs}).json()
    vectors = tiny_embedder.encode([TEXTS[0], TEXTS[1], TEXTS[3]], prompt_name="query")
    cosines = np.array([1.0, vectors[1] @ vectors[2]])
    probabilities = CALIBRATION.probability(cosines)
    assert body["threshold"] == 0.5
    for result, p in zip(body["data"], probabilities):
        assert result["probability"] == pytest.approx(p, abs=1e-3)
        assert result["paraphrase"] == bool(p >= 0.5)
    assert body["data"][0]["paraphrase"] is True  # sigmoid(20 * 1 - 10) = 0.99995
    strict = post(server, "paraphrase", {"pairs": pairs[:1], "threshold": 0.99999}).json()
    assert strict["threshold"] == 0.99999 and strict["data"][0]["paraphrase"] is False
    assert error_of(post(server, "paraphrase", {"pairs": pairs, "threshold": 1.5}), 422)["param"] == "threshold"


def test_cors_only_for_the_origins_given(server, tiny_embedder):
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
    allowed = httpx.options(f"{server}/v1/embeddings", headers={"Origin": ORIGIN, **preflight})
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == ORIGIN
    other = httpx.options(f"{server}/v1/embeddings", headers={"Origin": "https://baska.example.com", **preflight})
    assert "access-control-allow-origin" not in other.headers
    with live(create_app(tiny_embedder, ServeSettings(paraphrase=False))) as base:  # no --cors-origin: CORS off
        response = httpx.post(f"{base}/v1/embeddings", json={"input": "merhaba"}, headers={"Origin": ORIGIN})
        assert response.status_code == 200 and "access-control-allow-origin" not in response.headers


def test_search_without_index_is_404(server):
    assert error_of(post(server, "search", {"query": "gradyan"}), 404)["code"] == "no_index"


def test_search_over_an_index(tiny_embedder, tmp_path):
    from anlam.data import Document
    from anlam.search import Index

    docs = [Document("optim", "Gradyan patlaması, geri yayılımda gradyanların katlanarak büyümesidir.",
                     metadata={"konu": "optimizasyon"}),
            Document("cnn", "Evrişimli sinir ağları görüntülerdeki yerel örüntüleri öğrenir.", metadata={"konu": "görü"})]
    index = Index.build(docs, tmp_path / "index", model=tiny_embedder)
    with live(create_app(tiny_embedder, ServeSettings(paraphrase=False), index=index)) as base:
        body = post(base, "search", {"query": ["gradyan patlamasi", "EVRİŞİMLİ AĞLAR"], "k": 1, "mode": "bm25"}).json()
        assert [r["hits"][0]["id"] for r in body["data"]] == ["optim", "cnn"]
        filtered = post(base, "search", {"query": "gradyan", "mode": "hybrid", "filter": {"konu": "görü"}}).json()
        assert {h["id"] for h in filtered["data"][0]["hits"]} == {"cnn"}
        assert error_of(post(base, "search", {"query": "x", "k": 0}), 422)["param"] == "k"


# -- inputs longer than the model reads --------------------------------------------------------


@pytest.fixture(scope="module")
def strict_server(tiny_embedder):
    """Default limits: an over-long input is 413 unless the request asks for truncation."""
    with live(create_app(tiny_embedder, calibration=CALIBRATION)) as base:
        yield base


def test_over_long_input_is_413_unless_truncation_is_asked(strict_server, tiny_embedder):
    counts = tiny_embedder.token_counts(["kısa", LONG], "query")
    assert counts[1] > tiny_embedder.max_tokens == 128
    error = error_of(post(strict_server, "embeddings", {"input": ["kısa", LONG]}), 413)
    assert error["code"] == "context_length_exceeded" and error["param"] == "input[1]"
    assert f"input[1] has {counts[1]} tokens; the model reads at most 128" in error["message"]
    assert '"truncate": true' in error["message"] and "--truncate" in error["message"]

    body = post(strict_server, "embeddings", {"input": ["kısa", LONG], "truncate": True}).json()
    np.testing.assert_allclose([d["embedding"] for d in body["data"]], tiny_embedder.encode(["kısa", LONG]), atol=1e-5)
    assert body["usage"]["prompt_tokens"] == counts[0] + 128  # the tokens embedded, not the tokens sent

    pairs = {"pairs": [["kısa", "başka bir cümle"], ["kısa", LONG]]}
    assert error_of(post(strict_server, "similarity", pairs), 413)["param"] == "pairs[1][1]"
    assert error_of(post(strict_server, "paraphrase", pairs), 413)["param"] == "pairs[1][1]"
    truncated = post(strict_server, "paraphrase", {**pairs, "truncate": True}).json()
    assert len(truncated["data"]) == 2 and truncated["usage"]["prompt_tokens"] == sum(
        tiny_embedder.token_counts(["kısa", "başka bir cümle"], "query")) + 128


def test_server_started_with_truncate(tiny_embedder):
    with live(create_app(tiny_embedder, ServeSettings(truncate=True, paraphrase=False))) as base:
        body = post(base, "embeddings", {"input": LONG}).json()
        assert body["usage"]["prompt_tokens"] == 128
        np.testing.assert_allclose(body["data"][0]["embedding"], tiny_embedder.encode([LONG])[0], atol=1e-5)
        assert error_of(post(base, "embeddings", {"input": LONG, "truncate": False}), 413)["param"] == "input[0]"
        ids = tiny_embedder.tokenizer(LONG, add_special_tokens=False)["input_ids"]
        by_ids = post(base, "embeddings", {"input": ids}).json()
        assert by_ids["usage"]["prompt_tokens"] == 128
        np.testing.assert_allclose(by_ids["data"][0]["embedding"], body["data"][0]["embedding"], atol=1e-5)


# -- token ids -----------------------------------------------------------------------------------


def test_token_ids_are_checked_against_the_vocabulary(strict_server, tiny_embedder):
    ids = [tiny_embedder.tokenizer(t, add_special_tokens=False)["input_ids"] for t in TEXTS[:2]]
    bad = [ids[0], ids[1][:5] + [250002] + ids[1][6:]]
    error = error_of(post(strict_server, "embeddings", {"input": bad}), 422)
    assert error["param"] == "input[1][5]" and error["code"] == "invalid_token_id"
    assert "250002 is not in the model's vocabulary (0 to 250001)" in error["message"]
    assert error_of(post(strict_server, "embeddings", {"input": [3, -1]}), 422)["param"] == "input[1]"
    assert error_of(post(strict_server, "embeddings", {"input": [ids[0], []]}), 422)["param"] == "input[1]"
    assert error_of(post(strict_server, "embeddings", {"input": [[1.5]]}), 422)["param"] == "input"
    long_ids = tiny_embedder.tokenizer(LONG, add_special_tokens=False)["input_ids"]
    error = error_of(post(strict_server, "embeddings", {"input": [ids[0], long_ids]}), 413)
    assert error["param"] == "input[1]" and error["code"] == "context_length_exceeded"


@pytest.fixture(scope="module")
def server_process(tiny_model_path, tmp_path_factory):
    """``anlam serve`` as its own process (the tiny model, an API key); yields the base URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = tmp_path_factory.mktemp("server") / "server.log"
    env = {**os.environ, "ANLAM_API_KEY": KEY, "PYTHONUNBUFFERED": "1"}
    with open(log, "w", encoding="utf-8") as out:
        process = subprocess.Popen([sys.executable, "-m", "anlam", "serve", "--model", str(tiny_model_path), "--port",
                                    str(port), "--threads", "1", "--no-paraphrase"], stdout=out, stderr=subprocess.STDOUT,
                                   env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(process, base, log)
        yield base
    finally:
        process.terminate()
        process.wait(30)


def test_openai_client_sends_token_ids_to_a_server_process(server_process, tiny_embedder):
    client = openai.OpenAI(base_url=f"{server_process}/v1", api_key=KEY, max_retries=0)
    tokenizer = tiny_embedder.tokenizer
    ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in TEXTS]
    by_text = client.embeddings.create(model="m", input=TEXTS)
    by_ids = client.embeddings.create(model="m", input=ids)
    text_vectors = np.array([d.embedding for d in by_text.data])
    id_vectors = np.array([d.embedding for d in by_ids.data])
    assert ((text_vectors * id_vectors).sum(axis=1) > 0.9999).all()
    assert by_ids.usage.prompt_tokens == by_text.usage.prompt_tokens  # prompt and special tokens counted alike

    one = client.embeddings.create(model="m", input=tokenizer(TEXTS[1])["input_ids"],  # with <s> ... </s>
                                   extra_body={"input_type": "passage"})
    passage = client.embeddings.create(model="m", input=TEXTS[1], extra_body={"input_type": "passage"})
    assert float(np.dot(one.data[0].embedding, passage.data[0].embedding)) > 0.9999

    with pytest.raises(openai.UnprocessableEntityError) as caught:
        client.embeddings.create(model="m", input=[ids[0], ids[1][:5] + [10**6]])
    assert caught.value.param == "input[1][5]" and caught.value.code == "invalid_token_id"


# -- paraphrase calibration ----------------------------------------------------------------------


def test_paraphrase_calibrates_at_start_up_and_caches_outside_the_model(tiny_model_path, tiny_embedder, tmp_path,
                                                                      monkeypatch):
    from anlam.apps import paraphrase

    folder = tmp_path / "model"
    shutil.copytree(tiny_model_path, folder)
    before = sorted(p.relative_to(folder) for p in folder.rglob("*"))
    embedder = Embedder(tiny_embedder.model, str(folder))  # the tiny weights, read from a folder with no calibration
    home = tmp_path / "home"
    monkeypatch.setenv("ANLAM_HOME", str(home))
    calls = []

    def pairs(split="dev", negatives=None):
        calls.append(split)
        positive = [("Aşırı öğrenme nasıl önlenir?", "asiri ogrenme nasil onlenir?"),
                    ("GPU'nun belleği yetmiyor.", "GPU’NUN BELLEĞİ YETMİYOR.")]
        negative = [("Aşırı öğrenme nasıl önlenir?", "Yarın hava yağmurlu olacakmış."),
                    ("GPU'nun belleği yetmiyor.", "Eksik değerler medyanla doldurulabilir.")]
        return positive + negative, [1.0, 1.0, 0.0, 0.0]

    monkeypatch.setattr(paraphrase, "mltr_calibration_pairs", pairs)
    request = {"pairs": [["Model ezberliyor.", "model ezberliyor"]]}
    with live(create_app(embedder, ServeSettings(paraphrase=True))) as base:
        assert calls == ["dev"]  # fitted before the server answered anything
        assert post(base, "paraphrase", request).json()["data"][0]["paraphrase"] is True
        assert calls == ["dev"]
    cached = home / "calibrations" / f"{model_checksum(folder)}.json"
    assert json.loads(cached.read_text(encoding="utf-8"))["source"] == "ML-TR dev"
    assert sorted(p.relative_to(folder) for p in folder.rglob("*")) == before  # the model folder only read

    with live(create_app(embedder)) as base:  # the next start reads the cache
        assert post(base, "paraphrase", request).status_code == 200
    assert calls == ["dev"]
    with live(create_app(embedder, ServeSettings(paraphrase=False))) as base:
        assert error_of(post(base, "paraphrase", request), 404)["code"] == "paraphrase_disabled"


def test_paraphrase_without_calibration_answers_503(tiny_embedder, monkeypatch, tmp_path):
    from anlam.apps import paraphrase

    monkeypatch.setenv("ANLAM_HOME", str(tmp_path))  # no cached calibration either

    def no_pairs(split="dev", negatives=None):
        raise AnlamError("ML-TR dev is not installed")

    monkeypatch.setattr(paraphrase, "mltr_calibration_pairs", no_pairs)
    with live(create_app(tiny_embedder)) as base:  # the server still starts; embeddings work
        error = error_of(post(base, "paraphrase", {"pairs": [["a", "b"]]}), 503)
        assert error["code"] == "no_calibration" and "ML-TR dev is not installed" in error["message"]
        assert post(base, "embeddings", {"input": "merhaba"}).status_code == 200


# -- batching and back-pressure ----------------------------------------------------------------


def test_concurrent_requests_share_one_forward_pass(tiny_embedder):
    gate = Gate(tiny_embedder)
    with live(create_app(gate.embedder, ServeSettings(max_batch_size=16, paraphrase=False))) as base:
        async def fire() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=base, timeout=30) as http:
                first = asyncio.create_task(http.post("/v1/embeddings", json={"input": TEXTS[0]}))
                await asyncio.to_thread(gate.entered.wait, 10)  # the first request holds the model thread
                rest = [asyncio.create_task(http.post("/v1/embeddings", json={"input": [t, TEXTS[0]]}))
                        for t in TEXTS[1:]]
                await asyncio.to_thread(wait_queued, base, len(rest))
                gate.release.set()
                return [await first, *[await r for r in rest]]

        responses = asyncio.run(fire())
    assert gate.batches == [1, 2 * len(TEXTS[1:])]  # the three queued requests ran as one batch
    expected = tiny_embedder.encode(TEXTS, prompt_name="query")
    for i, response in enumerate(responses[1:], start=1):
        np.testing.assert_allclose(response.json()["data"][0]["embedding"], expected[i], atol=1e-5)
        np.testing.assert_allclose(response.json()["data"][1]["embedding"], expected[0], atol=1e-5)


def test_full_queue_answers_503_with_retry_after(tiny_embedder):
    gate = Gate(tiny_embedder)
    with live(create_app(gate.embedder, ServeSettings(queue_size=1, batching=False, paraphrase=False))) as base:
        results: dict[str, httpx.Response] = {}

        def send(name: str) -> None:
            results[name] = httpx.post(f"{base}/v1/embeddings", json={"input": name}, timeout=30)

        threads = [threading.Thread(target=send, args=(name,)) for name in ("birinci", "ikinci")]
        threads[0].start()
        assert gate.entered.wait(10)  # "birinci" is on the model thread
        threads[1].start()
        wait_queued(base, 1)  # "ikinci" fills the queue
        response = httpx.post(f"{base}/v1/embeddings", json={"input": "üçüncü"}, timeout=30)
        gate.release.set()
        for thread in threads:
            thread.join(30)
    assert error_of(response, 503)["code"] == "queue_full"
    assert response.headers["retry-after"] == "1"
    assert [results[n].status_code for n in ("birinci", "ikinci")] == [200, 200]
    assert gate.batches == [1, 1]


def test_batcher_respects_size_and_token_budget():
    seen: list[list[str]] = []
    hold = threading.Event()

    def encode(texts):
        seen.append(list(texts))
        hold.wait(10)
        return np.arange(len(texts), dtype=np.float32)[:, None] + 0.5

    async def main():
        batcher = MicroBatcher(encode, max_batch_size=6, max_batch_tokens=40, max_wait_ms=0, queue_size=5)
        await batcher.start()
        try:
            first = asyncio.create_task(batcher.embed(["a"], [3]))
            while not seen:
                await asyncio.sleep(0.005)
            jobs = [asyncio.create_task(batcher.embed(t, n)) for t, n in (
                (["b1", "b2"], [4, 4]), (["c1", "c2", "c3"], [5, 2, 1]),  # 5 texts x 5 tokens = 25: together
                (["d1", "d2"], [9, 9]),  # 7 texts would pass max_batch_size 6: next batch
                (["e1", "e2"], [12, 1]),  # with d: 4 texts x 12 tokens = 48 > 40: next batch
            )]
            jobs.append(asyncio.create_task(batcher.call(lambda: "searched")))  # runs alone, in order
            await asyncio.sleep(0.05)
            with pytest.raises(QueueFull):
                await batcher.embed(["f"], [1])
            hold.set()
            return await first, await asyncio.gather(*jobs)
        finally:
            await batcher.stop()

    first, (b, c, d, e, searched) = asyncio.run(main())
    assert seen == [["a"], ["b1", "b2", "c1", "c2", "c3"], ["d1", "d2"], ["e1", "e2"]]
    assert b.ravel().tolist() == [0.5, 1.5] and c.ravel().tolist() == [2.5, 3.5, 4.5]  # each got its own rows
    assert searched == "searched" and e.ravel().tolist() == [0.5, 1.5]


def test_two_workers_share_a_batch_run_side_by_side_and_calls_run_alone():
    running: list[int] = []  # how many encodes run at this moment, sampled by each call
    seen: list[list[str]] = []
    lock, both, hold = threading.Lock(), threading.Barrier(2, timeout=10), threading.Event()

    def encode(texts):
        with lock:
            seen.append(list(texts))
        if len(seen) <= 2:
            both.wait()  # the first two batches must be on the model threads together
        hold.wait(10)
        return np.array([[float(t[-1])] for t in texts], dtype=np.float32)

    def search():
        running.append(len(seen))
        return "aranan"

    async def main():
        batcher = MicroBatcher(encode, max_wait_ms=50, workers=2)
        await batcher.start()
        try:
            # queued together: one batch, shared between the two idle workers, shortest requests together
            jobs = [asyncio.create_task(batcher.embed(t, n)) for t, n in (
                (["uzun1"], [30]), (["kisa2"], [3]), (["uzun3"], [28]), (["kisa4"], [4]))]
            await asyncio.sleep(0.2)
            call = asyncio.create_task(batcher.call(search))  # waits for both batches
            later = asyncio.create_task(batcher.embed(["sonra5"], [2]))  # and this waits for the call
            await asyncio.sleep(0.1)
            assert not call.done()
            hold.set()
            return await asyncio.gather(*jobs), await call, await later
        finally:
            await batcher.stop()

    vectors, searched, later = asyncio.run(main())
    assert sorted(map(sorted, seen[:2])) == [["kisa2", "kisa4"], ["uzun1", "uzun3"]]
    assert [v.ravel().tolist() for v in vectors] == [[1.0], [2.0], [3.0], [4.0]]  # each request its own row
    assert searched == "aranan" and running == [2] and seen[2] == ["sonra5"] and later.ravel().tolist() == [5.0]


def test_model_failure_reaches_every_waiting_request():

    def encode(texts):
        raise RuntimeError("model exploded")

    async def main():
        batcher = MicroBatcher(encode, max_wait_ms=50)
        await batcher.start()
        try:
            return await asyncio.gather(batcher.embed(["a"], [1]), batcher.embed(["b"], [1]), return_exceptions=True)
        finally:
            await batcher.stop()

    results = asyncio.run(main())
    assert [str(r) for r in results] == ["model exploded", "model exploded"]


# -- the command -------------------------------------------------------------------------------


def test_cli_builds_the_app_from_options(cli, monkeypatch, tiny_model_path):
    import anlam.serve

    calls = {}
    monkeypatch.setattr(anlam.serve, "run_server", lambda app, **kw: calls.update(app=app, **kw))
    monkeypatch.setenv("ANLAM_API_KEY", "sk-from-env")
    result = cli("serve", "--model", tiny_model_path, "--max-inputs", "4", "--no-batching", "--port", "8123",
                 "--truncate", "--no-paraphrase")
    assert result.returncode == 0, result.stderr
    settings = calls["app"].state.service.settings
    assert (calls["host"], calls["port"]) == ("127.0.0.1", 8123)
    assert settings.api_key == "sk-from-env" and settings.max_inputs == 4 and settings.batching is False
    assert settings.truncate is True and settings.paraphrase is False
    bad = cli("serve", "--model", tiny_model_path, "--queue-size", "0")
    assert bad.returncode == 2 and "--queue-size must be at least 1" in bad.stderr


def test_cli_serves_an_index_with_its_own_model(cli, monkeypatch, tiny_embedder, tmp_path):
    import anlam.serve
    from anlam.data import Document
    from anlam.search import Index

    Index.build([Document("d1", "Toplu normalleştirme eğitimi hızlandırır.")], tmp_path / "index", model=tiny_embedder)
    calls = {}
    monkeypatch.setattr(anlam.serve, "run_server", lambda app, **kw: calls.update(app=app, **kw))
    result = cli("serve", "--index", tmp_path / "index")
    assert result.returncode == 0, result.stderr
    service = calls["app"].state.service
    assert service.index is not None and service.model_id == "model"  # the index's model, not the default base


def test_busy_port_is_a_clear_error(tiny_embedder):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(AnlamError, match="cannot listen on 127.0.0.1"):
            run_server(create_app(tiny_embedder), "127.0.0.1", taken.getsockname()[1])


def test_connections_to_the_server_socket_send_without_delay():
    """asyncio turns Nagle off only for sockets that say IPPROTO_TCP; with it on, every keep-alive
    response (headers, then body) waited about 40 ms for the client's delayed ACK."""
    import asyncio

    from anlam.serve.app import listening_socket

    async def accept_one() -> int:
        seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport) -> None:
                sock = transport.get_extra_info("socket")
                seen.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        server = await asyncio.get_running_loop().create_server(Probe, sock=listening_socket("127.0.0.1", 0))
        port = server.sockets[0].getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            return await asyncio.wait_for(seen, 10)
        finally:
            writer.close()
            server.close()

    assert asyncio.run(accept_one()) != 0


def test_cli_gives_an_exported_model_a_stream_per_thread(cli, monkeypatch, tiny_model_path):
    import anlam.serve
    from anlam.models import exported

    torch_threads = [8]  # torch's own default here: one per physical core
    monkeypatch.setattr(anlam.serve, "run_server", lambda app, **kw: None)
    monkeypatch.setattr("torch.set_num_threads", torch_threads.append)  # the session's torch keeps its count
    monkeypatch.setattr("torch.get_num_threads", lambda: torch_threads[-1])
    monkeypatch.setattr(exported, "_runtime_threads", None)
    monkeypatch.setattr(exported, "_runtime_streams", 1)
    for args, threads, streams in (((), 8, 8), (("--threads", "3"), 3, 3), (("--threads", "4", "--workers", "2"), 4, 2)):
        assert cli("serve", "--model", tiny_model_path, "--no-paraphrase", *args).returncode == 0
        # the runtime of an export loaded now; torch's count is the same
        assert (exported._threads(), exported._runtime_streams, torch_threads[-1]) == (threads, streams, threads)
