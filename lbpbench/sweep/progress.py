"""The sweep progress bar: one tqdm bar on stderr with done / skipped / failed / diverged counts.

Skipped runs (already finished, or failed earlier and not retried) advance the bar too, so its
total is always the whole sweep and a resumed sweep starts part-way along.
"""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm


class SweepProgress:
    """Counts outcomes and mirrors them in the bar's postfix."""

    def __init__(self, total: int, *, enabled: bool = True, desc: str = "sweep") -> None:
        self.counts = {"done": 0, "skipped": 0, "failed": 0, "diverged": 0}
        self.bar = tqdm(total=total, desc=desc, unit="run", file=sys.stderr, disable=not enabled,
                        dynamic_ncols=True, position=0, leave=True)
        self._refresh()

    def _refresh(self) -> None:
        self.bar.set_postfix(self.counts, refresh=True)

    def skip(self, n: int = 1) -> None:
        if n:
            self.counts["skipped"] += n
            self.bar.update(n)
            self._refresh()

    def record(self, status: str) -> None:
        key = {"ok": "done"}.get(status, status)
        self.counts[key] = self.counts.get(key, 0) + 1
        self.bar.update(1)
        self._refresh()

    def write(self, message: str) -> None:
        """Print a line without breaking the bar."""
        self.bar.write(message, file=sys.stderr)

    def close(self) -> None:
        self.bar.close()

    def __enter__(self) -> SweepProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
