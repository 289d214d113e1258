"""Where a job writes its text output (JSON lines): a path, an open text stream, or standard output."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


@contextmanager
def open_text_output(output: str | Path | IO[str] | None) -> Iterator[IO[str]]:
    """Yield a text stream for ``output``: an object with ``write`` as it is; ``None`` or ``"-"`` →
    standard output (left open); anything else a file path, created with its parent folders (UTF-8)."""
    if output is not None and hasattr(output, "write"):
        yield output  # type: ignore[misc]
    elif output is None or str(output) == "-":
        yield sys.stdout
    else:
        path = Path(output)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as fh:
            yield fh
