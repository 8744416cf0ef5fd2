"""The printed process calibration record: what one print run is, measured on its PNC-TS sample.

Contract 1.6: a test-structure sample and the networks printed in the same
run share the inks' sheet resistances and the EGT material, so the record of
one run (its process id) is what training and export use for every network
printed in it: the variation eps (1.6), the sheet resistances of RH and RL
(1.2; the exporter draws geometries with them) and the cell maps (process_map).

HDF5 layout (written by the characteriser into its output file; the root attr
``family = "printed"`` is the characteriser's):

    /calibration            attrs: format, process, sample, eps, eps_se, rh_ohm_sq, rh_ohm_sq_se,
                                   rl_ohm_sq, rl_ohm_sq_se, dw_um, dw_um_se, layout, source,
                                   created_utc, software
    /calibration/ACT        CellMap of the activation cell
    /calibration/NEG        CellMap of the negative-weight cell
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from labctl import files
from labctl.errors import ConfigError, DataFileError
from labctl.families.printed.process_map import CellMap

FORMAT = "pnc-process-calibration/1"
FAMILY = "printed"
GROUP = "calibration"
_FLOAT_ATTRS = ("eps", "eps_se", "rh_ohm_sq", "rl_ohm_sq", "rh_ohm_sq_se", "rl_ohm_sq_se", "dw_um", "dw_um_se")
_TEXT_ATTRS = ("process", "sample", "layout", "source", "created_utc", "software")


@dataclass(frozen=True)
class ProcessCalibration:
    """One print run's calibration; SI units except ``dw_um`` (line-width bias, printed minus drawn W)."""

    process: str
    sample: str
    eps: float
    eps_se: float
    rh_ohm_sq: float
    rl_ohm_sq: float
    act: CellMap
    neg: CellMap
    rh_ohm_sq_se: float = 0.0
    rl_ohm_sq_se: float = 0.0
    dw_um: float = 0.0
    dw_um_se: float = 0.0
    layout: str = ""
    source: str = ""
    created_utc: str = ""
    software: str = ""

    def cell_map(self, kind: str) -> CellMap:
        return {"ACT": self.act, "NEG": self.neg}[kind]

    def write(self, target) -> None:
        """Write ``/calibration`` into an open h5py File (or under a group); replaces an earlier one."""
        if GROUP in target:
            del target[GROUP]
        group = target.create_group(GROUP)
        group.attrs["format"] = FORMAT
        for name in _FLOAT_ATTRS:
            group.attrs[name] = float(getattr(self, name))
        for name in _TEXT_ATTRS:
            group.attrs[name] = str(getattr(self, name))
        self.act.write(group.create_group("ACT"))
        self.neg.write(group.create_group("NEG"))

    @classmethod
    def from_group(cls, group, where: str) -> "ProcessCalibration":
        """The record in an open ``/calibration`` group; ``where`` names it in errors."""
        if group.attrs.get("format") != FORMAT:
            raise DataFileError(f"{where}: /calibration has format {group.attrs.get('format')!r}, "
                                f"not {FORMAT!r}")
        for sub in ("ACT", "NEG"):
            if sub not in group:
                raise DataFileError(f"{where}: /calibration lacks its {sub} cell map")
        try:
            floats = {n: float(group.attrs.get(n, 0.0)) for n in _FLOAT_ATTRS}
            texts = {n: str(group.attrs.get(n, "")) for n in _TEXT_ATTRS}
        except (TypeError, ValueError) as exc:
            raise DataFileError(f"{where}: /calibration has a malformed attribute ({exc})") from None
        return cls(act=CellMap.read(group["ACT"]), neg=CellMap.read(group["NEG"]), **floats, **texts)


def read(path: str | Path) -> ProcessCalibration:
    """The process calibration in ``path``; one-line DataFileError if it is not a printed one."""
    p = Path(path)
    with files.open_hdf5(p, "a printed process calibration from `labctl characterise`") as fh:
        family = fh.attrs.get("family", "cmna")
        if family != FAMILY:
            raise DataFileError(f"{p}: a {family} file, not a printed process calibration")
        if GROUP not in fh:
            raise DataFileError(f"{p}: not a printed process calibration (no /calibration; "
                                f"kind={fh.attrs.get('kind', '?')!r})")
        return ProcessCalibration.from_group(fh[GROUP], str(p))


def require_process(calibration: ProcessCalibration, process: str, what: str = "design") -> None:
    """ConfigError when ``what`` (a design, a print job, a bench sample) is for another print run.

    Contract 1.6 and 4.6: a calibration holds only for the run it was measured in.
    """
    if calibration.process != process:
        raise ConfigError(f"{what} is for process {process!r}, but the calibration is for process "
                          f"{calibration.process!r} (sample {calibration.sample})")
