"""How the suite's property tests draw their examples: the same ones in every run, unless asked for others.

Each test wrapped in :func:`replayable` runs with hypothesis's ``derandomize`` (the examples follow from
the test's own code), so a failure in CI fails the same way in a fresh clone, with no example database
to carry over. ``AOM_FUZZ_SEED=<n>`` draws other examples from seed ``n``; ``AOM_FUZZ_SEED=random`` picks
a seed. The session header names the mode and the seed (:func:`describe`), so any failing run can be
replayed. The differentials keep their own seeds (``AOM_PSS_SEED``, ``AOM_DIFF_SEED``).
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from typing import Any

from hypothesis import seed, settings

_ASKED = os.environ.get("AOM_FUZZ_SEED", "").strip()
#: None: derandomized (the default). Else the seed every replayable test draws its examples from.
SEED: int | None = (random.SystemRandom().randrange(2**32) if _ASKED == "random" else int(_ASKED)) if _ASKED else None


def replayable(**kwargs: Any) -> Callable[[Any], Any]:
    """``@settings(**kwargs)`` with no example database, derandomized or seeded from ``AOM_FUZZ_SEED``."""

    def wrap(test: Any) -> Any:
        test = settings(derandomize=SEED is None, database=None, **kwargs)(test)
        return test if SEED is None else seed(SEED)(test)

    return wrap


def describe() -> str:
    if SEED is None:
        return (
            "property tests: derandomized (every run draws the same examples; AOM_FUZZ_SEED=random draws others)"
        )
    return f"property tests: seed {SEED} (replay with AOM_FUZZ_SEED={SEED})"
