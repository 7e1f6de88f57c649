"""Output folders: anlam never deletes what it did not write (``anlam.io.output_folder``, issue 16).

Every folder-writing command runs, through the real CLI, against a folder holding a user's files:
it exits 2 with one message naming the folder, and the files are still there, with or without
``--overwrite``. An earlier output of the same command is replaced only with ``--overwrite``;
another command's output, the command's own input and the current folder are refused.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from anlam.io import EVAL_REPORT, OUTPUT_KINDS, SEARCH_INDEX, TRAINING_RUN

SAMPLES = Path(__file__).resolve().parents[1] / "src" / "anlam" / "samples"
NOTE = "Önemli notlarım: ığüşöç İĞÜŞÖÇ — silinmemeli."
PAIRS = [
    ("Aşırı öğrenme modelin eğitim verisini ezberlemesidir.", "Model eğitim setini ezberleyince aşırı öğrenme olur.", 1.0),
    ("Öğrenme oranı adım büyüklüğünü belirler.", "Adım büyüklüğünü öğrenme oranı ayarlar.", 0.9),
    ("GPU'lar matris çarpımını hızlandırır.", "Dropout nöronları rastgele kapatır.", 0.0),
    ("Toplu normalleştirme eğitimi kararlı kılar.", "Kümeleme etiketsiz veriyi gruplar.", 0.1),
]
CORPUS = [a for a, _, _ in PAIRS] + [b for _, b, _ in PAIRS]


def _user_folder(path: Path, *, model_files: bool = False) -> Path:
    """A folder of a user's own: a note, a sub-folder with data, optionally a model-like ``modules.json``."""
    (path / "veri").mkdir(parents=True)
    (path / "notlar.txt").write_text(NOTE, encoding="utf-8")
    (path / "veri" / "ölçümler.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    if model_files:
        (path / "modules.json").write_text("[]\n", encoding="utf-8")
    return path


def _intact(path: Path) -> bool:
    return ((path / "notlar.txt").read_text(encoding="utf-8") == NOTE
            and (path / "veri" / "ölçümler.csv").read_text(encoding="utf-8") == "a,b\n1,2\n")


def _refused(result, folder: Path, says: str = "") -> None:
    assert result.returncode == 2, (result.returncode, result.stdout[-500:], result.stderr[-1500:])
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("anlam: error: ") and str(folder) in message and says in message, message


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """Tiny inputs: labelled pairs, a corpus, a folder of documents, a two-section d2l-tr checkout."""
    root = tmp_path_factory.mktemp("inputs")
    pairs = root / "ciftler.csv"
    pairs.write_text("sentence_0,sentence_1,label\n" + "".join(f'"{a}","{b}",{y}\n' for a, b, y in PAIRS), encoding="utf-8")
    corpus = root / "metinler.txt"
    corpus.write_text("\n".join(CORPUS) + "\n", encoding="utf-8")
    docs = root / "belgeler"
    docs.mkdir()
    (docs / "notlar.md").write_text("# Aşırı öğrenme\n\n" + " ".join(CORPUS[:4]) + "\n\n# GPU\n\n" + " ".join(CORPUS[4:]) + "\n",
                                    encoding="utf-8")
    d2l = root / "d2l-tr"
    (d2l / "chapter_linear").mkdir(parents=True)
    (d2l / "chapter_linear" / "linear.md").write_text(
        "# Doğrusal Bağlanım\n\n*Bağlanım*, bağımsız değişkenlerle bağımlı değişken arasındaki ilişkiyi modeller.\n",
        encoding="utf-8")
    (d2l / "TERMINOLOGY.md").write_text("regression; bağlanım\nloss function; kayıp işlevi\n", encoding="utf-8")
    return {"pairs": pairs, "corpus": corpus, "docs": docs, "d2l": d2l}


@pytest.fixture
def model_copy(tiny_model_path, tmp_path):
    """A copy of the tiny model a test may mark or damage."""
    return Path(shutil.copytree(tiny_model_path, tmp_path / "model"))


# every command that writes a folder: the arguments that write it to OUT (the last thing appended)
FOLDER_COMMANDS = {
    "data build": lambda m, i: ["data", "build", "--out"],
    "data d2l": lambda m, i: ["data", "d2l", i["d2l"], "--out"],
    "eval": lambda m, i: ["eval", m, "--task", "user", "--pairs", i["pairs"], "--device", "cpu", "--out"],
    "train": lambda m, i: ["train", "--preset", "quick", "--base", m, "--data", i["pairs"], "--max-steps", "1",
                           "--no-eval", "--device", "cpu", "--out"],
    "export": lambda m, i: ["export", m, "--format", "onnx", "--out"],
    "index build": lambda m, i: ["index", "build", i["docs"], "--model", m, "--out"],
    "base prune-vocab": lambda m, i: ["base", "prune-vocab", m, "--corpus", i["corpus"], "--out"],
    "mteb": lambda m, i: ["mteb", m, "--task", "stsb-tr", "--device", "cpu", "--out"],
}


@pytest.mark.parametrize("command", FOLDER_COMMANDS)
def test_a_users_folder_is_never_written(command, cli, tiny_model_path, inputs, tmp_path):
    folder = _user_folder(tmp_path / "benim")
    for extra in ([], ["--overwrite"]):
        result = cli(*FOLDER_COMMANDS[command](tiny_model_path, inputs), folder, *extra)
        _refused(result, folder, "not an output of")
        assert _intact(folder) and sorted(p.name for p in folder.iterdir()) == ["notlar.txt", "veri"]


@pytest.mark.parametrize("command", ["export", "base prune-vocab", "train"])
def test_a_users_model_folder_is_not_an_earlier_output(command, cli, tiny_model_path, inputs, tmp_path):
    """A folder that merely looks like a model (modules.json) was accepted and replaced before."""
    folder = _user_folder(tmp_path / "modelim", model_files=True)
    for extra in ([], ["--overwrite"]):
        _refused(cli(*FOLDER_COMMANDS[command](tiny_model_path, inputs), folder, *extra), folder)
        assert _intact(folder) and (folder / "modules.json").exists()


def test_index_build_keeps_a_users_manifest(cli, tiny_model_path, inputs, tmp_path):
    """``manifest.json`` is a common name: only an anlam index manifest makes the folder an index."""
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "manifest.json").write_text('{"name": "Benim sitem", "format": "web"}\n', encoding="utf-8")
    for extra in ([], ["--overwrite"]):
        _refused(cli(*FOLDER_COMMANDS["index build"](tiny_model_path, inputs), folder, *extra), folder)
    assert json.loads((folder / "manifest.json").read_text(encoding="utf-8"))["name"] == "Benim sitem"


def test_base_build_keeps_a_users_folder_under_anlam_home(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("ANLAM_HOME", str(tmp_path / "home"))
    folder = _user_folder(tmp_path / "home" / "models" / "e5-small")
    _refused(cli("base", "build", "--rebuild"), folder, "not an output of `anlam base build`")
    assert _intact(folder)


# commands that write one named file: a folder in its place is refused before any work
FILE_OPTIONS = {
    "encode --out": lambda m, i, f: ["encode", "--model", m, "--out", f, "Aşırı öğrenme nedir?"],
    "dedup --out": lambda m, i, f: ["dedup", i["corpus"], "--model", m, "--out", f],
    "cluster --out": lambda m, i, f: ["cluster", i["corpus"], "-k", "2", "--model", m, "--out", f],
    "cluster --map": lambda m, i, f: ["cluster", i["corpus"], "-k", "2", "--model", m, "--map", f],
    "intent --confusion": lambda m, i, f: ["intent", "--intents", SAMPLES / "ml_faq_intents.yaml", "--eval",
                                           SAMPLES / "ml_faq_eval.csv", "--model", m, "--confusion", f],
    "base pack --out": lambda m, i, f: ["base", "pack", m, "--out", f],
}
SUFFIX = {"encode --out": ".npy", "dedup --out": ".csv", "cluster --out": ".json", "cluster --map": ".png",
          "intent --confusion": ".png", "base pack --out": ".safetensors"}


@pytest.mark.parametrize("option", FILE_OPTIONS)
def test_a_folder_named_as_an_output_file_is_refused(option, cli, tiny_model_path, inputs, tmp_path):
    folder = _user_folder(tmp_path / f"kumeler{SUFFIX[option]}")
    _refused(cli(*FILE_OPTIONS[option](tiny_model_path, inputs, folder)), folder, "is a folder")
    assert _intact(folder)


def test_calibrate_keeps_a_users_file_of_its_name(cli, model_copy, inputs):
    mine = model_copy / "anlam_calibration.json"
    mine.write_text('{"benim": "ayarlarım"}\n', encoding="utf-8")
    _refused(cli("calibrate", model_copy, "--pairs", inputs["pairs"]), model_copy, "not a calibration anlam wrote")
    assert json.loads(mine.read_text(encoding="utf-8")) == {"benim": "ayarlarım"}
    mine.unlink()  # then it calibrates, and replaces its own calibration on the next run
    for _ in range(2):
        assert cli("calibrate", model_copy, "--pairs", inputs["pairs"], "--json").returncode == 0
    assert json.loads(mine.read_text(encoding="utf-8"))["method"] == "logistic-cosine"


# ---------------------------------------------------------------- anlam's own outputs


def test_eval_replaces_its_report_only_with_overwrite(cli, tiny_model_path, inputs, tmp_path):
    out = tmp_path / "rapor"
    args = FOLDER_COMMANDS["eval"](tiny_model_path, inputs)
    assert cli(*args, out).returncode == 0 and EVAL_REPORT.holds(out)
    (out / "report.md").write_text("eski", encoding="utf-8")
    _refused(cli(*args, out), out, "add --overwrite")
    assert (out / "report.md").read_text(encoding="utf-8") == "eski"
    assert cli(*args, out, "--overwrite").returncode == 0
    assert (out / "report.md").read_text(encoding="utf-8").startswith("# anlam evaluation")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left behind


def test_d2l_replaces_its_extract_only_with_overwrite(cli, inputs, tmp_path):
    out = tmp_path / "d2l"
    out.mkdir()  # an empty folder may be used
    args = FOLDER_COMMANDS["data d2l"](None, inputs)
    assert cli(*args, out).returncode == 0
    assert sorted(p.name for p in out.iterdir()) == ["anlam_d2l.json", "blocks.parquet", "glossary.csv"]
    _refused(cli(*args, out), out, "add --overwrite")
    assert cli(*args, out, "--overwrite").returncode == 0 and (out / "glossary.csv").exists()


def test_index_build_rebuilds_its_index_only_with_overwrite(cli, tiny_model_path, inputs, tmp_path):
    out = tmp_path / "ix"
    args = FOLDER_COMMANDS["index build"](tiny_model_path, inputs)
    assert cli(*args, out).returncode == 0 and SEARCH_INDEX.holds(out)
    _refused(cli(*args, out), out, "add --overwrite")
    assert cli(*args, out, "--overwrite").returncode == 0
    assert json.loads((out / "manifest.json").read_text(encoding="utf-8"))["generation"] == "g000002"


def test_another_commands_output_is_refused(cli, tiny_model_path, inputs, tmp_path):
    index = tmp_path / "ix"
    assert cli(*FOLDER_COMMANDS["index build"](tiny_model_path, inputs), index).returncode == 0
    before = sorted(p.name for p in index.iterdir())
    for command in ("eval", "data build", "mteb", "export"):
        result = cli(*FOLDER_COMMANDS[command](tiny_model_path, inputs), index, "--overwrite")
        _refused(result, index, "holds the output of `anlam index build` (manifest.json)")
    assert sorted(p.name for p in index.iterdir()) == before
    run = tmp_path / "run"
    run.mkdir()
    (run / "anlam_training.json").write_text("{}\n", encoding="utf-8")
    _refused(cli(*FOLDER_COMMANDS["index build"](tiny_model_path, inputs), run, "--overwrite"), run,
             "holds the output of `anlam train`")
    assert sorted(p.name for p in run.iterdir()) == ["anlam_training.json"]


# ---------------------------------------------------------------- inputs and the current folder


def test_export_onto_its_own_training_run_is_refused(cli, model_copy):
    """`anlam export runs/best --out runs/best` replaced the trained model with the export."""
    (model_copy / "anlam_training.json").write_text("{}\n", encoding="utf-8")
    before = sorted(p.name for p in model_copy.iterdir())
    for extra in ([], ["--overwrite"]):
        _refused(cli("export", model_copy, "--format", "onnx", "--out", model_copy, *extra), model_copy,
                 "is what this command reads")
    assert sorted(p.name for p in model_copy.iterdir()) == before


def test_prune_vocab_onto_its_own_input_is_refused(cli, model_copy, inputs):
    (model_copy / "anlam_prune.json").write_text("{}\n", encoding="utf-8")  # an earlier pruned model
    before = sorted(p.name for p in model_copy.iterdir())
    _refused(cli("base", "prune-vocab", model_copy, "--corpus", inputs["corpus"], "--out", model_copy, "--overwrite"),
             model_copy, "is what this command reads")
    assert sorted(p.name for p in model_copy.iterdir()) == before


def test_train_onto_its_base_is_refused(cli, model_copy, inputs):
    (model_copy / "anlam_training.json").write_text("{}\n", encoding="utf-8")  # the base is itself a finished run
    before = sorted(p.name for p in model_copy.iterdir())
    _refused(cli(*FOLDER_COMMANDS["train"](model_copy, inputs), model_copy, "--overwrite"), model_copy,
             "is what this command reads")
    assert sorted(p.name for p in model_copy.iterdir()) == before


def test_an_output_holding_the_input_is_refused(cli, tiny_model_path, inputs, tmp_path):
    out = tmp_path / "rapor"
    assert cli(*FOLDER_COMMANDS["eval"](tiny_model_path, inputs), out).returncode == 0
    model = Path(shutil.copytree(tiny_model_path, out / "model"))  # the model now lives in the old report
    _refused(cli(*FOLDER_COMMANDS["eval"](model, inputs), out, "--overwrite"), out, "which this command reads")
    assert (model / "modules.json").exists()


def test_eval_out_dot_is_refused(cli, tiny_model_path, inputs, tmp_path, monkeypatch):
    work = _user_folder(tmp_path / "proje")
    monkeypatch.chdir(work)
    for extra in ([], ["--overwrite"]):
        _refused(cli(*FOLDER_COMMANDS["eval"](tiny_model_path, inputs), ".", *extra), Path("."))
    assert _intact(work)
    empty = tmp_path / "bos"
    empty.mkdir()
    monkeypatch.chdir(empty)  # even an empty working folder: replacing it would pull it from under the shell
    _refused(cli(*FOLDER_COMMANDS["eval"](tiny_model_path, inputs), "."), Path("."), "current folder")
    assert empty.is_dir() and not list(empty.iterdir())


def test_data_build_needs_out(cli):
    result = cli("data", "build")
    assert result.returncode == 2 and "--out" in result.stderr


def test_kinds_match_the_markers_their_commands_write():
    from anlam.models.manifest import MANIFEST
    from anlam.search import index
    from anlam.train import MARKER

    assert SEARCH_INDEX.marker == index.MANIFEST and SEARCH_INDEX.match({"format": index.FORMAT})
    assert TRAINING_RUN.marker == MARKER and MANIFEST in {k.marker for k in OUTPUT_KINDS}
    assert len({k.command for k in OUTPUT_KINDS}) == len(OUTPUT_KINDS)
