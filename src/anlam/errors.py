"""The one exception type for mistakes a user can make (bad file, bad column, empty text).

The CLI turns it into a one-line message and exit status 2; the Python API lets it raise.
"""

from __future__ import annotations


class AnlamError(Exception):
    """A user-caused error whose message names the file, row or field at fault."""
