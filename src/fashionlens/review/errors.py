"""The review store's errors: each one line that says what was expected and what was found.

The CLI turns them into exit codes (:attr:`ReviewStoreError.exit_code`): 2 for a file that is not a
usable review store (corrupt, another database, a newer schema), 3 for a database another process
holds locked past the busy timeout (an operating condition: try again). None of them is raised
after anything was written: a saved answer is never lost to an error.
"""

from __future__ import annotations

__all__ = ["NewerSchemaError", "NotAReviewStoreError", "ReviewStoreError", "StoreCorruptError", "StoreLockedError",
           "UnknownTaskError"]


class ReviewStoreError(RuntimeError):
    """A review store that cannot be used as asked; ``exit_code`` is the CLI's exit status for it."""

    exit_code = 2


class StoreCorruptError(ReviewStoreError):
    """The file is damaged (not a database, or its integrity check fails)."""


class NotAReviewStoreError(ReviewStoreError):
    """The file is a SQLite database, but not a fashionlens review store."""


class NewerSchemaError(ReviewStoreError):
    """The store was written by a newer fashionlens (its schema version is higher than this one reads)."""


class StoreLockedError(ReviewStoreError):
    """Another connection held the database locked for longer than the busy timeout."""

    exit_code = 3


class UnknownTaskError(ReviewStoreError, KeyError):
    """No queued garment/item has this id, or the field is not one of its fields."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "unknown task"
