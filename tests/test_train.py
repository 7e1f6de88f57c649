"""anlam.train on the tiny model: recipes, data, a full run, refusal, kill-and-resume, DDP, weight arithmetic."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import fields
from pathlib import Path
from typing import get_args

import numpy as np
import pandas as pd
import pytest
import torch

from anlam.data import mltr_pairs
from anlam.errors import AnlamError
from anlam.train import MARKER, PRESETS, Recipe, is_finished, load_recipe, train, training_data
from anlam.train.recipes import D2LKind, LossName, PresetName, SchedulerName


@pytest.fixture(scope="module")
def small_pairs(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pairs") / "pairs.csv"
    mltr_pairs("train")[["sentence_0", "sentence_1", "label"]].head(96).to_csv(path, index=False)
    return path


def test_card_preset_is_the_original_recipe():
    card = PRESETS["card"]
    assert (card.loss, card.epochs, card.batch_size, card.lr, card.scheduler, card.warmup_ratio, card.seed) == (
        "cosine", 3.0, 64, 5e-5, "linear", 0.0, 42)


def test_recipe_config_and_overrides(tmp_path):
    config = tmp_path / "recipe.toml"
    config.write_text('loss = "angle"\nbatch_size = 8\n', encoding="utf-8")
    recipe = load_recipe("quick", config, batch_size=4, lr=None)
    assert (recipe.preset, recipe.loss, recipe.batch_size, recipe.lr) == ("quick", "angle", 4, PRESETS["quick"].lr)
    config.write_text("epochs = 2\nmerge_base = 1\n", encoding="utf-8")
    recipe = load_recipe("quick", config)  # an int is a float here, stored as the float
    assert (recipe.epochs, recipe.merge_base) == (2.0, 1.0) and isinstance(recipe.epochs, float)
    with pytest.raises(AnlamError, match=re.escape("preset = 'hizli': expected one of card|quick|best|sts-expert")):
        load_recipe("hizli")
    with pytest.raises(AnlamError, match="expert 'best': not a preset without an expert"):
        load_recipe("best", expert="best")


FIELDS = ", ".join(f.name for f in fields(Recipe))


@pytest.mark.parametrize("toml, message", [
    ("ogrenme_orani = 1", f"unknown field 'ogrenme_orani' (known: {FIELDS})"),
    ('epochs = "three"', "epochs = 'three': expected a number"),
    ("batch_size = 8.5", "batch_size = 8.5: expected an integer"),
    ("batch_size = true", "batch_size = True: expected an integer"),  # a bool is not an int here
    ("max_seq_length = true", "max_seq_length = True: expected an integer"),
    ('freeze_embeddings = "evet"', "freeze_embeddings = 'evet': expected true or false"),
    ('loss = "mse"', "loss = 'mse': expected one of cosine|cosent|angle"),
    ('scheduler = "cosinus"', "scheduler = 'cosinus': expected one of " + "|".join(get_args(SchedulerName))),
    ('pairs = "wiki"', "pairs = 'wiki': expected one of ml-tr|stsb-tr|none"),
    ('expert = "uzman"', "expert = 'uzman': expected one of \"\"|card|quick|best|sts-expert"),
    ('matryoshka = [256, "128"]', "matryoshka = [256, '128']: expected a list of integers"),
    ('d2l_kinds = ["heading", "kitap"]',
     "d2l_kinds = ['heading', 'kitap']: expected a list of heading|section|translation|glossary"),
])
def test_config_errors_name_the_field(tmp_path, toml, message):
    config = tmp_path / "tarif.toml"
    config.write_text(toml + "\n", encoding="utf-8")
    with pytest.raises(AnlamError) as caught:
        load_recipe("quick", config)
    assert str(caught.value) == f"{config}: {message}"


def test_override_errors_name_the_field():
    with pytest.raises(AnlamError) as caught:
        load_recipe("quick", epochs="üç")
    assert str(caught.value) == "epochs = 'üç': expected a number"
    with pytest.raises(AnlamError) as caught:
        load_recipe("quick", ogrenme_orani=1e-4)
    assert str(caught.value) == f"unknown field 'ogrenme_orani' (known: {FIELDS})"


def test_presets_load_and_fixed_sets_match_their_owners(tmp_path):
    """Every preset, written out in full as TOML, passes the checks; the Literal sets are the ones the
    trainer and the data know."""
    from dataclasses import asdict

    from transformers import SchedulerType

    from anlam.data.d2l import training_pairs

    for name, preset in PRESETS.items():
        config = tmp_path / f"{name}.toml"
        # JSON writes these values (strings, numbers, booleans, lists) as TOML does; TOML has no None
        config.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in asdict(preset).items() if v is not None),
                          encoding="utf-8")
        assert load_recipe("card", config) == preset
    assert set(get_args(PresetName)) == set(PRESETS)
    assert set(get_args(SchedulerName)) <= {s.value for s in SchedulerType}
    assert set(get_args(D2LKind)) == set(training_pairs(2))
    assert Recipe().d2l_kinds == list(get_args(D2LKind))


def test_every_loss_name_builds(tiny_model_path):
    from sentence_transformers.sentence_transformer import losses

    from anlam.models import load_sentence_transformer
    from anlam.train import build_losses

    model = load_sentence_transformer(str(tiny_model_path), device="cpu")
    built = {name: build_losses(model, load_recipe("card", loss=name), ["pairs"])["pairs"] for name in get_args(LossName)}
    assert {name: type(loss) for name, loss in built.items()} == {
        "cosine": losses.CosineSimilarityLoss, "cosent": losses.CoSENTLoss, "angle": losses.AnglELoss}


def test_training_data_mixes_typing_twins_and_extras():
    recipe = load_recipe("best", max_pairs=500, typing_augment=50, general_tqp=20)
    data = training_data(recipe)
    pairs = data["pairs"]
    assert pairs["label"].between(0, 1).all()
    assert len(pairs) > 500 + 5749  # subset + twins + STSb-TR train
    twins = pairs[pairs["label"] == 1.0]
    from anlam.text import ascii_fold

    assert any(ascii_fold(a) == b or ascii_fold(b) == a for a, b in zip(twins["sentence_0"], twins["sentence_1"]))
    assert set(data) == {"pairs", "triplets", "tqp"}
    assert len(data["tqp"]) == 20
    again = training_data(recipe)
    pd.testing.assert_frame_equal(pairs, again["pairs"])


def test_real_text_pairs_and_distillation_targets(tiny_model_path):
    """d2l-tr pairs come one dataset per kind; distillation targets are the base's own English vectors."""
    from anlam.models import load_sentence_transformer
    from anlam.train.data import distillation_targets
    from anlam.train.losses import dataset_prompts

    recipe = load_recipe("quick", pairs="none", triplets=False, d2l_pairs=30, d2l_kinds=["heading", "glossary"],
                         distill=12)
    data = training_data(recipe)
    assert set(data) == {"d2l-heading", "d2l-glossary", "distill"}
    assert list(data["distill"].columns) == ["tr", "en"] and len(data["d2l-glossary"]) == 30
    # with typing_augment (quick has it), 30 % more headings typed without Turkish letters
    from anlam.text import ascii_fold

    headings = data["d2l-heading"]["anchor"]
    assert len(headings) == 39 and (headings.map(ascii_fold) == headings).sum() >= 9
    model = load_sentence_transformer(str(tiny_model_path), device="cpu")
    targets = distillation_targets(model, data["distill"])
    assert list(targets.columns) == ["sentence", "label"] and len(targets) == 12
    english = model.encode(data["distill"]["en"].tolist()[:1], prompt="query: ", normalize_embeddings=True)
    np.testing.assert_allclose(targets["label"].iloc[0], english[0], atol=1e-5)
    assert dataset_prompts(model, list(data)) == {"d2l-heading": {"anchor": "query: ", "positive": "passage: "},
                                           "d2l-glossary": "query: ", "distill": "query: "}


def _run_args(out, base, data, *extra):
    return [sys.executable, "-m", "anlam", "train", "--out", str(out), "--base", str(base), "--data", str(data),
            "--preset", "quick", "--batch-size", "8", "--no-eval", *extra]


def test_full_run_loads_without_anlam(tmp_path, tiny_model_path, small_pairs):
    out = tmp_path / "model"
    recipe = load_recipe("quick", batch_size=8, max_steps=6, logging_steps=2, save_steps=3)
    result = train(out, recipe, base=tiny_model_path, data=small_pairs, device="cpu", evaluate=False)
    assert result.steps == 6 and is_finished(out)
    assert [r["step"] for r in result.log] == [2, 4, 6]
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "| Epoch | Step | Training Loss |" in card and "library_name: sentence-transformers" in card
    assert (out / "loss-curve.png").exists() and not (out / "checkpoints").exists()
    texts = ["Aşırı öğrenme nedir?", "GPU'lar eğitimi hızlandırır.", "ogrenme orani nasil secilir"]
    code = ("import sys, json; from sentence_transformers import SentenceTransformer as S; "
            "m = S(sys.argv[1], device='cpu'); print(json.dumps(m.encode(json.loads(sys.argv[2])).tolist()))")
    env = {**os.environ, "PYTHONPATH": ""}
    done = subprocess.run([sys.executable, "-I", "-c", code, str(out), json.dumps(texts)], capture_output=True, text=True,
                          env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    plain = np.array(json.loads(done.stdout))
    assert plain.shape == (3, 32)
    # the plain call, with no prompt named, embeds exactly as `anlam encode --prompt query`
    from anlam.models import Embedder

    embedder = Embedder.from_pretrained(out, device="cpu")
    np.testing.assert_allclose(plain, embedder.encode(texts, prompt_name="query"), atol=1e-5)
    assert not np.allclose(plain, embedder.encode(texts, prompt_name="none"), atol=1e-3)
    assert "model.encode(" in card
    with pytest.raises(AnlamError, match="a finished model is already there"):
        train(out, recipe, base=tiny_model_path, data=small_pairs, device="cpu", evaluate=False)
    train(out, recipe, base=tiny_model_path, data=small_pairs, device="cpu", evaluate=False, overwrite=True)
    assert is_finished(out)


def test_bad_inputs(tmp_path, tiny_model_path, small_pairs):
    recipe = load_recipe("quick", max_steps=1)
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"sentence_0": ["Bir cümle."], "sentence_1": ["Başka bir cümle."], "label": [3.0]}).to_csv(bad, index=False)
    with pytest.raises(AnlamError, match="row 1: column label: outside"):
        train(tmp_path / "o1", recipe, base=tiny_model_path, data=bad, evaluate=False)
    with pytest.raises(AnlamError, match="not a model folder"):
        train(tmp_path / "o2", recipe, base=tmp_path, data=small_pairs, evaluate=False)
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


def test_kill_then_resume_finishes(tmp_path, tiny_model_path, small_pairs):
    out = tmp_path / "model"
    args = _run_args(out, tiny_model_path, small_pairs, "--max-steps", "12", "--save-steps", "2")
    proc = subprocess.Popen(args + ["--lr", "1e-4"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and not (out / "checkpoints" / "checkpoint-4" / "trainer_state.json").exists():
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert list((out / "checkpoints").glob("checkpoint-*")), "no checkpoint before the kill"
    assert not (out / MARKER).exists()
    refused = subprocess.run(args, capture_output=True, text=True)
    assert refused.returncode == 2 and "unfinished run" in refused.stderr
    resumed = subprocess.run(args + ["--resume", "--lr", "1e-4"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    marker = json.loads((out / MARKER).read_text(encoding="utf-8"))
    assert marker["steps"] == 12
    from anlam.models import Embedder

    vectors = Embedder.from_pretrained(out, device="cpu").encode(["Öğrenme oranı nedir?", "ogrenme orani nedir"])
    assert vectors.shape == (2, 32) and np.isfinite(vectors).all()


def test_torchrun_two_cpu_processes(tmp_path, tiny_model_path, small_pairs):
    torchrun = Path(sys.executable).with_name("torchrun")
    out = tmp_path / "ddp"
    args = [str(torchrun), "--nproc_per_node=2", "--master_port=29517", "-m", "anlam", "train", "--out", str(out),
            "--base", str(tiny_model_path), "--data", str(small_pairs), "--preset", "quick", "--batch-size", "4",
            "--max-steps", "4", "--no-eval", "--device", "cpu"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    marker = json.loads((out / MARKER).read_text(encoding="utf-8"))
    assert marker["steps"] == 4


def test_merge_with_base_interpolates_weights(tmp_path, tiny_model_path, small_pairs):
    """merge_base 0.5 lands half way between the base and the tuned weights; Matryoshka trains."""
    from anlam.models import load_sentence_transformer
    from anlam.models.merge import merge_with_base

    out = tmp_path / "model"
    recipe = load_recipe("quick", batch_size=8, max_steps=3, save_steps=100, triplets=False, typing_augment=0,
                         matryoshka=[32, 16, 8], lr=1e-3)
    train(out, recipe, base=tiny_model_path, data=small_pairs, device="cpu", evaluate=False)
    base = load_sentence_transformer(str(tiny_model_path), device="cpu").state_dict()
    tuned = load_sentence_transformer(str(out), device="cpu")
    name = next(k for k in base if k.endswith("query.weight"))
    before = tuned.state_dict()[name].clone()
    assert not torch.allclose(before, base[name])
    merge_with_base(tuned, str(tiny_model_path), 0.5)
    torch.testing.assert_close(tuned.state_dict()[name], (before + base[name]) / 2)


def test_sts_expert_pairs_are_stsb_tr_without_identical_sides():
    pairs = training_data(load_recipe("sts-expert"))["pairs"]
    assert len(pairs) == 5720 and (pairs["sentence_0"] != pairs["sentence_1"]).all()


def test_expert_is_added_as_a_task_vector(tmp_path, tiny_model_path, small_pairs, monkeypatch):
    """`expert`: a second preset trained from the same base, added as weight * (expert - base), then removed."""
    from dataclasses import replace

    from anlam.models import load_sentence_transformer

    monkeypatch.setitem(PRESETS, "sts-expert", replace(PRESETS["sts-expert"], max_steps=2, batch_size=8))
    recipe = load_recipe("quick", batch_size=8, max_steps=2, save_steps=100, triplets=False, typing_augment=0, lr=1e-3)
    options = {"base": tiny_model_path, "data": small_pairs, "device": "cpu", "evaluate": False}
    plain = train(tmp_path / "plain", recipe, **options)
    mixed = train(tmp_path / "mixed", replace(recipe, expert="sts-expert", expert_weight=0.5), **options)
    assert is_finished(mixed.out) and not (mixed.out / "expert").exists()
    assert json.loads((mixed.out / MARKER).read_text(encoding="utf-8"))["recipe"]["expert"] == "sts-expert"
    expert = train(tmp_path / "expert", load_recipe("sts-expert"), base=tiny_model_path, device="cpu", evaluate=False)
    weights = {name: load_sentence_transformer(str(path), device="cpu").state_dict()
               for name, path in [("base", tiny_model_path), ("plain", plain.out), ("mixed", mixed.out),
                                  ("expert", expert.out)]}
    key = next(k for k in weights["base"] if k.endswith("query.weight"))
    want = weights["plain"][key] + 0.5 * (weights["expert"][key] - weights["base"][key])
    assert not torch.allclose(weights["plain"][key], weights["mixed"][key])
    torch.testing.assert_close(weights["mixed"][key], want, atol=1e-5, rtol=1e-4)
