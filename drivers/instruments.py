"""Open an SMU by resource name and get the right driver, chosen by its ``*IDN?``.

A bench file names instruments by VISA resource only (contract section 3);
the model, and with it the command set, is whatever answers.
"""

from __future__ import annotations

import pyvisa

from labctl.errors import InstrumentError

from .keithley2450 import Keithley2450
from .keithley2636b import Keithley2636B
from .keysight_34980a import Keysight34980A
from .keysight_b2900 import KeysightB2900
from .visa_instrument import DEFAULT_TIMEOUT_S, VisaInstrument, identify, model_from_idn, open_session

DRIVERS: dict[str, type[VisaInstrument]] = {
    model: driver
    for driver in (Keithley2450, KeysightB2900, Keithley2636B, Keysight34980A)
    for model in driver.CHANNELS
}
"""Normalised model name (see :func:`model_from_idn`) -> driver class."""


def open_instrument(
    resource: str, rm: pyvisa.ResourceManager | None = None, timeout_s: float = DEFAULT_TIMEOUT_S
) -> VisaInstrument:
    """Connect to ``resource``, identify it and return its driver."""
    session = open_session(resource, rm, timeout_s)
    idn = identify(session, resource)
    driver = DRIVERS.get(model_from_idn(idn))
    if driver is None:
        session.close()
        raise InstrumentError(
            f"{resource} is a {idn!r}; labctl drives the Keithley 2450, Keysight B2901A/B2902A and Keithley 2636B"
        )
    return driver(session, resource, idn)
