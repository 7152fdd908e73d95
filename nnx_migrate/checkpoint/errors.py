"""Why a Linen checkpoint could not be carried over (the CLI exits 2 with the message)."""

from __future__ import annotations

# At most this many problems are listed one per line; the count of the rest follows.
MAX_LISTED = 40


class CheckpointError(Exception):
    """The checkpoint could not be read, or the model could not be built for it."""


class CheckpointMismatchError(CheckpointError):
    """The checkpoint does not fit the NNX model (or optimizer): every problem at once.

    `problems` lists each Linen leaf with no place, each NNX variable left unfilled and
    each pair whose shape or dtype differs, so one run shows everything to fix.
    """

    def __init__(self, source: str, problems: list[str]):
        self.problems = list(problems)
        shown = self.problems[:MAX_LISTED]
        more = len(self.problems) - len(shown)
        lines = [f"{source} does not fit the NNX model: {len(self.problems)} problem(s)"]
        lines += [f"  {problem}" for problem in shown]
        if more:
            lines.append(f"  ... and {more} more")
        super().__init__("\n".join(lines))
