"""Review queue (issue 25): garments and items the models are unsure of, queued for a person to answer.

* :mod:`~fashionlens.review.fields` reads tag results (v1/v2) and grade records into queue entries;
* :mod:`~fashionlens.review.ranking` orders them (uncertainty with a diversity term);
* :mod:`~fashionlens.review.store` keeps queue, answers and audit trail in one SQLite file;
* :mod:`~fashionlens.review.queue` builds the queue from a JSONL file;
* :mod:`~fashionlens.review.export` writes the reviewed labels as COCO and in the RISE layout.

The web page and its ``/v1/review`` API live in :mod:`fashionlens.service`; the commands in
:mod:`fashionlens.cli.review`.
"""

from fashionlens.review.errors import (
    NewerSchemaError,
    NotAReviewStoreError,
    ReviewStoreError,
    StoreCorruptError,
    StoreLockedError,
    UnknownTaskError,
)
from fashionlens.review.store import ReviewStore, Task

__all__ = ["NewerSchemaError", "NotAReviewStoreError", "ReviewStore", "ReviewStoreError", "StoreCorruptError",
           "StoreLockedError", "Task", "UnknownTaskError"]
