"""The ``with`` block every family's bench uses: signals handled while it is held, outputs off on every exit.

Safety rule of the brief (outputs off on exit, exception and every signal):
inside the block SIGINT, SIGTERM and SIGHUP raise, whatever their inherited
disposition (a background job inherits SIGINT ignored), so ``close`` runs its
power-down. The error that ended the block stays the one reported; a problem
at power-down is added to it as a note (what is still on is in the shutdown
report). One implementation, so no family's bench can get this order wrong.
"""

from __future__ import annotations

import contextlib
from typing import Self

from labctl import shutdown
from labctl.errors import LabctlError


class HeldBench:
    """Base of a bench that is a context manager: subclasses give ``is_open``, ``open()`` and
    ``close(emergency=...)`` (power down, then disconnect; ``emergency`` when an exception ended the block)."""

    _signals: contextlib.ExitStack | None = None

    @property
    def is_open(self) -> bool:
        raise NotImplementedError

    def open(self) -> Self:
        raise NotImplementedError

    def close(self, *, emergency: bool = False) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self._signals = contextlib.ExitStack()
        self._signals.enter_context(shutdown.signals_handled())
        if not self.is_open:
            try:
                self.open()
            except BaseException:
                self._signals.close()
                raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.close(emergency=exc_type is not None)
        except LabctlError as problem:
            if exc is None:
                raise
            exc.add_note(f"at power-down: {problem}")
        finally:
            if self._signals is not None:
                self._signals.close()
