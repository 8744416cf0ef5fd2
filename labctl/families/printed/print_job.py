"""Print jobs (contract section 3): read with every rule checked, write only what passes them.

``read_job`` is what the bench (and the simulated printer) trusts: it parses
the TOML (rule J1, ``job_parse``) and checks J2 to J8 (``job_rules``,
``job_pads``) in order, refusing on the first broken rule in one line.
``write_job`` validates the same way *before* anything is written, then
writes atomically, so a job on disk has always passed the printer's rules.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from labctl.files import atomic_write_text
from labctl.families.printed.job_pads import check_j7, check_j8
from labctl.families.printed.job_parse import parse_document
from labctl.families.printed.job_records import (JOB_FORMAT, CrossbarResistor, EgtGeometry, JobCell,
                                                 PadAssignment, PrintJob, ResistorGeometry)
from labctl.families.printed.job_rules import check_j2, check_j3, check_j4, check_j5, check_j6
from labctl.toml_files import parse_toml, read_user_file

__all__ = ["JOB_FORMAT", "PrintJob", "PadAssignment", "CrossbarResistor", "JobCell", "ResistorGeometry",
           "EgtGeometry", "read_job", "write_job", "validate_document", "job_toml"]


def validate_document(doc: dict, where: str, process: str | None = None) -> PrintJob:
    """The job in ``doc`` after rules J1 to J8; ConfigError naming ``where``, the item and the rule."""
    job = parse_document(where, doc)
    check_j2(where, job, process)
    check_j3(where, job)
    check_j4(where, job)
    check_j5(where, job)
    check_j6(where, job)
    check_j7(where, job)
    check_j8(where, job)
    return job


def read_job(path: str | Path, *, process: str | None = None) -> PrintJob:
    """The print job in ``path``, checked against contract 3.2 (and, given ``process``, rule J2's run)."""
    where = str(path)
    return validate_document(parse_toml(read_user_file(path, "print job"), where), where, process)


def write_job(job: PrintJob, path: str | Path, *, process: str | None = None) -> Path:
    """Validate ``job`` (J1 to J8, as the printer will) and write it atomically; nothing on a refusal."""
    doc = job.to_document()
    text = job_toml(doc)
    validate_document(parse_toml(text, str(path)), str(path), process)
    return atomic_write_text(path, text)


# -- a small TOML writer for the job's shape (tomli_w is not a dependency) -------------------


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"TOML has no {v!r}")  # J1 would refuse it anyway
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # a JSON string is a valid TOML basic string
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def _key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() and k.isascii() else json.dumps(k)


def job_toml(doc: dict) -> str:
    """The job document as TOML: scalars, then ``[pads]``/``[outputs]`` tables, then the arrays of tables
    (``[[resistor]]``, ``[[cell]]``) with component geometries as inline tables, as in contract 3.1."""
    lines = [f"{_key(k)} = {_value(v)}" for k, v in doc.items() if not isinstance(v, (dict, list))
             or (isinstance(v, dict) and k == "inks") or (isinstance(v, list) and not any(isinstance(x, dict)
                                                                                          for x in v))]
    for name in ("pads", "outputs"):
        lines += ["", f"[{name}]"] + [f"{_key(k)} = {_value(v)}" for k, v in doc[name].items()]
    for name in ("resistor", "cell"):
        for table in doc[name]:
            lines += ["", f"[[{name}]]"] + [f"{_key(k)} = {_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"
