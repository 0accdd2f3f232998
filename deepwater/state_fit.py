"""Does a state (name -> array) fit a network's weights? One check for every backend and weights file."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

SHOWN = 10  # names listed per kind of problem


def misfit(shapes: Mapping[str, Sequence[int]], state: Mapping[str, Any], complete: bool = True) -> str:
    """What keeps `state` from fitting weights of `shapes`, '' when it fits: unknown names, missing names
    (when `complete`) and wrong shapes, at most SHOWN of each."""
    expected = {name: tuple(int(d) for d in shape) for name, shape in shapes.items()}
    unknown = sorted(set(state) - set(expected))
    missing = sorted(set(expected) - set(state)) if complete else []
    wrong = [f"{name}: {tuple(np.shape(value))} but the graph has {expected[name]}" for name, value in state.items()
             if name in expected and tuple(np.shape(value)) != expected[name]]
    problems = ([f"unknown names {unknown[:SHOWN]}"] if unknown else []) + \
               ([f"missing names {missing[:SHOWN]}"] if missing else []) + \
               ([f"wrong shapes ({', '.join(wrong[:SHOWN])})"] if wrong else [])
    return "; ".join(problems)
