"""The ``anlam`` command: one typer app; each sub-module adds the commands of one area.

Every command is thin: it parses options, calls the Python API and prints. A user error
(``AnlamError``) becomes one line on stderr and exit status 2.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

import typer

from anlam.errors import AnlamError

app = typer.Typer(
    name="anlam",
    help="Turkish technical-text embeddings: build, train, evaluate, search, serve.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    # Imported for their side effect of adding commands to ``app``.
    from anlam.cli import apps, core, data, evaluate, export, search, serve, train  # noqa: F401


def main() -> None:
    """Console entry point."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # A command prints its own results and errors: no library load reports, progress bars or Python
    # warnings (the library itself changes none of these; set the variables to see them again).
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if not sys.warnoptions:  # python -W / PYTHONWARNINGS win
        warnings.simplefilter("ignore")
    logging.basicConfig(level=logging.WARNING, format="anlam: %(message)s")
    # anlam names the prompt of every call itself; the notice that a folder has a default prompt is noise here
    logging.getLogger("sentence_transformers.base.model").setLevel(logging.ERROR)
    try:
        app()
    except AnlamError as exc:
        print(f"anlam: error: {exc}", file=sys.stderr)
        sys.exit(2)


_register()
