"""Commands of one area; see the module docstring of the matching anlam module."""

from anlam.cli import app  # noqa: F401
