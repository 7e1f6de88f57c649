"""Commands of the apps: ``paraphrase``, ``calibrate``, ``dedup``, ``cluster``, ``intent``."""

from __future__ import annotations

import csv
import io
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from anlam.apps import (
    CALIBRATION_FILE,
    IntentMatcher,
    ParaphraseDetector,
    calibrate as calibrate_model,
    cluster_texts,
    evaluate_intents,
    find_duplicates,
    load_intent_eval,
    load_intents,
    mltr_calibration_pairs,
    plot_clusters,
    plot_confusion,
    read_pairs,
)
from anlam.apps.intent import AUTO, NONE
from anlam.cli import app
from anlam.cli.common import print_jsonl, print_table, stderr
from anlam.cli.core import ModelOpt
from anlam.data import read_texts
from anlam.errors import AnlamError
from anlam.io import check_output_file, write_json, write_text
from anlam.models import Embedder
from anlam.text import ascii_fold, tr_casefold

JsonOpt = Annotated[bool, typer.Option("--json", help="JSON lines on stdout, for programs.")]
ColumnOpt = Annotated[str, typer.Option("--column", help="Text field or column of a JSONL/CSV/TSV/JSON/Parquet corpus.")]
PlainOpt = Annotated[bool, typer.Option(help="FILE has one text per line (default for .txt).")]
CorpusArg = Annotated[Path, typer.Argument(help="Corpus: .txt (a text per line), .jsonl/.csv/.tsv/.json/.parquet (--column), or - for JSON lines on stdin.")]


def _columns(value: str | None) -> list[str] | None:
    return [c.strip() for c in value.split(",")] if value else None


def _write_rows(path: Path, header: list[str], rows: list[list[object]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    write_text(path, buffer.getvalue())


def _check_out(out: Path | None, suffixes: tuple[str, ...], option: str = "--out") -> None:
    """An output file named by ``option``: the right suffix, and no folder in its place (checked before any work)."""
    if out is not None and out.suffix.lower() not in suffixes:
        raise AnlamError(f"{out}: {option} must end in {' or '.join(suffixes)}")
    if out is not None:
        check_output_file(out)


@app.command()
def paraphrase(
    sentences: Annotated[list[str] | None, typer.Argument(help="Two sentences A B.")] = None,
    pairs: Annotated[Path | None, typer.Option("--pairs", help="CSV/TSV/JSONL of sentence pairs.")] = None,
    columns: Annotated[str | None, typer.Option(help="The two text columns of --pairs, e.g. soru,cevap (default sentence_0,sentence_1).")] = None,
    threshold: Annotated[float | None, typer.Option(help="Decide at this probability instead of the calibrated threshold.")] = None,
    model: ModelOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Paraphrase probability and decision for a pair, or for every pair of --pairs (in order)."""
    if pairs is not None and sentences:
        raise AnlamError("give either two sentences or --pairs FILE, not both")
    if pairs is not None:
        frame = read_pairs(pairs, _columns(columns))
        items = list(zip(frame["sentence_0"], frame["sentence_1"]))
    elif sentences and len(sentences) == 2:
        items = [(sentences[0], sentences[1])]
    else:
        raise AnlamError("give two sentences (A B) or --pairs FILE")
    detector = ParaphraseDetector.from_model(model)
    if threshold is not None:
        detector.calibration = detector.calibration.with_threshold(threshold)
    results = detector.predict(items)
    if json_out:
        print_jsonl(r.to_dict() for r in results)
        return
    print_table(f"threshold {detector.calibration.threshold:.3f}", ["#", "probability", "paraphrase", "A", "B"],
                ([i + 1, r.probability, "yes" if r.paraphrase else "no", a, b] for i, (r, (a, b)) in enumerate(zip(results, items))))


@app.command()
def calibrate(
    model: Annotated[Path | None, typer.Argument(help="Model folder or built-in name (default: the built-in tuned model; `base` for the raw base).")] = None,
    pairs: Annotated[Path | None, typer.Option("--pairs", help="Labelled pairs (label >= 0.5 is a paraphrase); default ML-TR dev (paraphrase vs every other grade).")] = None,
    columns: Annotated[str | None, typer.Option(help="Text, text and label columns of --pairs (default sentence_0,sentence_1,label).")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Fit the cosine -> paraphrase probability curve and threshold; store them in the model folder."""
    if pairs is None:
        items, labels = mltr_calibration_pairs("dev")
        source = "ML-TR dev"
    else:
        frame = read_pairs(pairs, _columns(columns), labelled=True)
        items, labels, source = list(zip(frame["sentence_0"], frame["sentence_1"])), list(frame["label"]), str(pairs)
    embedder = Embedder.from_pretrained(model)
    result = calibrate_model(embedder, items, labels, source=source)
    info = {**result.to_dict(), "path": str(Path(embedder.path) / CALIBRATION_FILE)}
    if json_out:
        print_jsonl([info])
        return
    print_table(f"calibrated on {source}", ["field", "value"],
                ([k, info[k]] for k in ("pairs", "positives", "threshold", "cosine_threshold", "f1", "auc", "weight", "bias", "path")))


@app.command()
def dedup(
    file: CorpusArg,
    column: ColumnOpt = "text",
    plain: PlainOpt = False,
    threshold: Annotated[float | None, typer.Option(help="Paraphrase probability that makes a duplicate (default: calibrated).")] = None,
    neighbours: Annotated[int, typer.Option(help="Nearest neighbours looked at per text.")] = 10,
    unique: Annotated[bool, typer.Option(help="Print the corpus without its near-duplicates instead of the groups.")] = False,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Also write the groups to .csv or .json.")] = None,
    model: ModelOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Near-duplicate groups of a corpus: the first text of each group and the later texts that repeat it."""
    _check_out(out, (".csv", ".json"))
    if neighbours < 1:
        raise AnlamError(f"--neighbours must be at least 1, got {neighbours}")
    texts = read_texts(file, column, plain)
    groups = find_duplicates(texts, ParaphraseDetector.from_model(model), neighbours=neighbours, threshold=threshold)
    records: list[dict[str, Any]] = [{"group": g, "items": [{"index": i, "text": texts[i], "probability": p}
                                      for i, p in zip(group.indices, [None, *group.probabilities])]}
               for g, group in enumerate(groups)]
    rows = [[r["group"], item["index"], item["probability"], item["text"]] for r in records for item in r["items"]]
    if out is not None:
        if out.suffix.lower() == ".json":
            write_json(out, records)
        else:
            _write_rows(out, ["group", "index", "probability", "text"], rows)
    stderr.print(f"{len(groups)} near-duplicate group(s), {sum(len(g.indices) - 1 for g in groups)} duplicate(s) in {len(texts)} texts")
    if unique:
        drop = {i for group in groups for i in group.indices[1:]}
        kept = [t for i, t in enumerate(texts) if i not in drop]
        if json_out:
            print_jsonl({"text": t} for t in kept)
        else:
            sys.stdout.write("".join(t + "\n" for t in kept))
    elif json_out:
        print_jsonl(records)
    else:
        print_table(None, ["group", "index", "probability", "text"],
                    ([g, i, "-" if p is None else p, t] for g, i, p, t in rows))


class ClusterMethod(str, Enum):
    average = "average"
    ward = "ward"
    kmeans = "kmeans"
    hdbscan = "hdbscan"


@app.command()
def cluster(
    file: CorpusArg,
    k: Annotated[int | None, typer.Option("-k", help="Number of clusters (every method but hdbscan).")] = None,
    auto: Annotated[bool, typer.Option("--auto", help="Pick k by silhouette (the default without -k).")] = False,
    method: Annotated[ClusterMethod, typer.Option(help="average (agglomerative, average linkage on cosine), ward, kmeans, or hdbscan (finds k itself, marks outliers -1).")] = ClusterMethod.average,
    centre: Annotated[bool, typer.Option("--centre/--no-centre", help="Subtract the corpus's mean vector before clustering (the default).")] = True,
    dims: Annotated[int, typer.Option(help="Keep only this many principal components of the centred vectors (0: all).")] = 0,
    max_k: Annotated[int, typer.Option(help="Largest k tried by --auto.")] = 12,
    min_size: Annotated[int, typer.Option(help="Smallest HDBSCAN cluster.")] = 3,
    keywords: Annotated[int, typer.Option(help="Keywords per cluster.")] = 5,
    column: ColumnOpt = "text",
    plain: PlainOpt = False,
    map_png: Annotated[Path | None, typer.Option("--map", help="Write a 2-D map of the clusters to this PNG.")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write assignments (.csv) or the full result (.json).")] = None,
    model: ModelOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help='One JSON line {"cluster": id, "text": ...} per input text.')] = False,
) -> None:
    """Cluster a corpus; each cluster gets a representative sentence and its top keywords."""
    if k is not None and auto:
        raise AnlamError("give either -k N or --auto, not both")
    if k is not None and method is ClusterMethod.hdbscan:
        raise AnlamError("-k does not apply to hdbscan: it finds the number of clusters itself")
    _check_out(out, (".csv", ".json"))
    _check_out(map_png, (".png",), "--map")
    texts = read_texts(file, column, plain)
    result = cluster_texts(texts, Embedder.from_pretrained(model), k=k, method=method.value, max_k=max_k,
                           min_cluster_size=min_size, n_keywords=keywords, centre=centre, dims=dims)
    if out is not None:
        if out.suffix.lower() == ".json":
            write_json(out, result.to_dict())
        else:
            _write_rows(out, ["index", "cluster", "text"], [[i, c, t] for i, (c, t) in enumerate(zip(result.labels, texts))])
    if map_png is not None:
        plot_clusters(result, map_png)
        stderr.print(f"map written to {map_png}")
    if json_out:
        print_jsonl({"cluster": c, "text": t} for c, t in zip(result.labels, texts))
        return
    noise = result.labels.count(-1)
    title = f"{result.k} clusters ({result.method}), silhouette {result.silhouette}" + (f", {noise} outliers" if noise else "")
    print_table(title, ["cluster", "size", "keywords", "representative"],
                ([c.id, c.size, ", ".join(c.keywords), c.representative] for c in result.clusters))


class IntentMethod(str, Enum):
    centroid = "centroid"
    knn = "knn"


@app.command()
def intent(
    intents: Annotated[Path, typer.Option("--intents", help="YAML: intent name -> list of example utterances.")],
    texts: Annotated[list[str] | None, typer.Argument(help="Texts; if none, read --file or stdin.")] = None,
    file: Annotated[Path | None, typer.Option("--file", "-f", help='Texts: .txt (a text per line), .jsonl {"text": ...} or a table with a text column.')] = None,
    plain: PlainOpt = False,
    method: Annotated[IntentMethod, typer.Option(help="knn: mean of the k closest examples; centroid: closest mean example.")] = IntentMethod.knn,
    k: Annotated[int, typer.Option("-k", help="Neighbours per intent for knn.")] = 3,
    threshold: Annotated[str, typer.Option(help='When to answer "unknown": auto (closer to the out-of-scope reference than its calibrated margin), none (never), or a number (best score below it).')] = AUTO,
    top: Annotated[int, typer.Option(help="Best intents listed per text.")] = 3,
    eval_file: Annotated[Path | None, typer.Option("--eval", help="Labelled CSV (text,intent; unknown for off-topic): accuracy, macro-F1, in-scope accuracy, off-topic rejected.")] = None,
    confusion: Annotated[Path, typer.Option(help="Where --eval writes the confusion-matrix PNG.")] = Path("intent_confusion.png"),
    model: ModelOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Match texts to the intents of an intents file (or "unknown"), or evaluate on a labelled file."""
    abstain = _intent_threshold(threshold)
    examples = load_intents(intents)
    if eval_file is not None:
        if texts or file is not None:
            raise AnlamError("--eval reads its texts from the labelled file; give no other texts")
        _check_out(confusion, (".png",), "--confusion")
        eval_texts, labels = load_intent_eval(eval_file, list(examples))
    else:
        items = list(texts) if texts else read_texts(file or Path("-"), plain=plain)
    matcher = IntentMatcher(Embedder.from_pretrained(model), examples, method=method.value, k=k, threshold=abstain)
    if eval_file is not None:
        report = evaluate_intents(matcher, eval_texts, labels)
        plot_confusion(report["labels"], report["confusion"], confusion, title=f"{eval_file.name}: doğruluk {report['accuracy']:.2f}")
        stderr.print(f"confusion matrix written to {confusion}")
        keys = ["accuracy", "macro_f1", "in_scope_accuracy", "out_of_scope_rejected"]
        if json_out:
            print_jsonl([{key: report[key] for key in keys}])
        else:
            print_table(f"{report['n']} texts, {_abstain_rule(matcher)}", keys,
                        [["-" if report[key] is None else report[key] for key in keys]])
        return
    matches = matcher.match(items, top=top)
    if json_out:
        print_jsonl({"text": t, **m.to_dict()} for t, m in zip(items, matches))
        return
    header = ["text", "intent", "score", *(["out of scope"] if matcher.auto else []), f"top {top}"]
    print_table(_abstain_rule(matcher), header,
                ([t, m.intent, m.score, *([m.out_of_scope] if matcher.auto else []),
                  "  ".join(f"{n} {s:.3f}" for n, s in m.top)] for t, m in zip(items, matches)))


def _intent_threshold(value: str) -> float | str | None:
    """``--threshold``: "auto", "none" (never abstain) or a number, checked before any work."""
    word = ascii_fold(tr_casefold(value.strip()))  # NONE, Auto, and a Turkish keyboard's dotted capitals
    if word in (AUTO, NONE):
        return AUTO if word == AUTO else None
    try:
        return float(value)
    except ValueError:
        raise AnlamError(f"--threshold must be {AUTO}, {NONE} or a number, got {value!r}") from None


def _abstain_rule(matcher: IntentMatcher) -> str:
    if matcher.auto:
        return f'"unknown" when score - out of scope < {matcher.threshold:.3f} (auto)'
    if matcher.threshold is None:
        return 'never "unknown" (--threshold none)'
    return f'"unknown" when score < {matcher.threshold:.3f}'
