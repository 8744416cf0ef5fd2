"""One SMU reading as a bench reports it to a listener (the session record, the GUI's live view).

Family-blind, so that the session record does not depend on any one family's bench."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Reading:
    """One SMU reading, as the session record stores it."""

    time_s: float
    role: str
    quantity: str
    value: float


ReadingListener = Callable[[Reading], None]
