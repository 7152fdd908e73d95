"""Why a comparison could not run at all (as opposed to running and finding a difference).

`compare()` returns a result whenever both models ran, however different their numbers
are; it raises one of these when they could not be set side by side. The CLI turns them
into exit code 2 with the message as the reason.
"""

from __future__ import annotations


class EquivalenceSetupError(Exception):
    """The two models could not be built, mapped or run side by side; the message says why."""


class AmbiguousMappingError(EquivalenceSetupError):
    """A Linen module or leaf fits more than one place on the NNX side.

    The harness never guesses: the message names every candidate and how to pick one
    with `mapping=`.
    """
