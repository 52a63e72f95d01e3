"""How a failure is told in one line: tables and command-line messages show the exception, not the
traceback's head (the whole traceback stays in the run's status.json)."""

from __future__ import annotations


def exception_line(error: str | None) -> str:
    """The line of an error text that says what went wrong: for a Python traceback, its final
    exception ("ValueError: unknown task 'x'", a multi-line message joined with spaces), not its head;
    otherwise the last non-empty line."""
    lines = [line.rstrip() for line in str(error or "").splitlines() if line.strip()]
    if not lines:
        return ""
    if lines[0].startswith("Traceback (most recent call last)"):
        # Frame and source lines are indented; the exception follows the last of them.
        last_indented = max((i for i, line in enumerate(lines) if line[:1].isspace()), default=0)
        block = lines[last_indented + 1 :]
        if block:
            return " ".join(line.strip() for line in block)
    return lines[-1].strip()
