"""Rule J1 of the print job (contract 3.2): a TOML document becomes typed records or is refused.

J1: ``format`` known; no unknown key; every number finite, and positive where
it is a value or a dimension. A refusal is one line naming the file, the item
and the rule (``job_rules.refuse``), and nothing is printed.
"""

from __future__ import annotations

import math
import re
from typing import Any

from labctl.families.printed.job_records import (CELL_EGTS, CELL_RESISTORS, JOB_FORMAT, CrossbarResistor,
                                                 EgtGeometry, JobCell, PadAssignment, PrintJob, ResistorGeometry)
from labctl.families.printed.job_rules import refuse

_TOP_KEYS = {"format", "process", "job", "id_code", "layers", "inks", "pads", "outputs", "resistor", "cell"}
_RESISTOR_KEYS = {"layer", "W_um", "L_um", "R_ohm"}
_JOB_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")


def _keys(where: str, item: str, doc: Any, allowed: set[str], required: set[str] | None = None) -> dict:
    """The table ``doc`` after J1's key checks (a table, no unknown key, no missing required key)."""
    if not isinstance(doc, dict):
        refuse(where, item, "is not a table", "J1")
    unknown = sorted(set(doc) - allowed)
    if unknown:
        refuse(where, item, f"unknown key {unknown[0]!r}", "J1")
    missing = sorted((allowed if required is None else required) - set(doc))
    if missing:
        refuse(where, item, f"lacks key {missing[0]!r}", "J1")
    return doc


def _positive(where: str, item: str, key: str, value: Any, *, integer: bool = False) -> float:
    """A finite positive number (J1); on the 1 um grid is J3's, so only type and sign are checked here."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        refuse(where, item, f"{key} {value!r} is not a finite positive number", "J1")
    return value


def _text(where: str, item: str, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        refuse(where, item, f"{key} {value!r} is not a non-empty string", "J1")
    return value


def _resistor(where: str, item: str, doc: Any) -> ResistorGeometry:
    doc = _keys(where, item, doc, _RESISTOR_KEYS)
    return ResistorGeometry(_text(where, item, "layer", doc["layer"]), _positive(where, item, "W_um", doc["W_um"]),
                            _positive(where, item, "L_um", doc["L_um"]), _positive(where, item, "R_ohm", doc["R_ohm"]))


def _egt(where: str, item: str, doc: Any) -> EgtGeometry:
    doc = _keys(where, item, doc, {"W_um", "L_um"})
    return EgtGeometry(_positive(where, item, "W_um", doc["W_um"]), _positive(where, item, "L_um", doc["L_um"]))


def _cell(where: str, doc: Any, index: int) -> JobCell:
    item = f"cell {doc.get('id', f'#{index + 1}') if isinstance(doc, dict) else f'#{index + 1}'}"
    if not isinstance(doc, dict) or doc.get("type") not in CELL_RESISTORS:
        refuse(where, item, f"type {doc.get('type') if isinstance(doc, dict) else None!r} is not ACT or NEG", "J1")
    kind = doc["type"]
    parts = set(CELL_RESISTORS[kind]) | set(CELL_EGTS[kind])
    doc = _keys(where, item, doc, {"id", "type", "in", "out"} | parts)
    return JobCell(_text(where, item, "id", doc["id"]), kind, _text(where, item, "in", doc["in"]),
                   _text(where, item, "out", doc["out"]),
                   {r: _resistor(where, f"{item} {r}", doc[r]) for r in CELL_RESISTORS[kind]},
                   {t: _egt(where, f"{item} {t}", doc[t]) for t in CELL_EGTS[kind]})


def _crossbar(where: str, doc: Any, index: int) -> CrossbarResistor:
    item = f"resistor {doc.get('id', f'#{index + 1}') if isinstance(doc, dict) else f'#{index + 1}'}"
    doc = _keys(where, item, doc, {"id", "a", "b"} | _RESISTOR_KEYS)
    geometry = _resistor(where, item, {k: doc[k] for k in _RESISTOR_KEYS})
    return CrossbarResistor(_text(where, item, "id", doc["id"]), _text(where, item, "a", doc["a"]),
                            _text(where, item, "b", doc["b"]), geometry)


def _pads(where: str, doc: Any) -> tuple[PadAssignment, ...]:
    if not isinstance(doc, dict):
        refuse(where, "pads", "is not a table", "J1")
    return tuple(PadAssignment(pad, _text(where, f"pad {pad}", "net", entry["net"]),
                               _text(where, f"pad {pad}", "role", entry["role"]))
                 for pad, entry in ((p, _keys(where, f"pad {p}", e, {"net", "role"})) for p, e in doc.items()))


def _header(where: str, doc: dict) -> tuple[tuple[int, ...], dict]:
    if doc["format"] != JOB_FORMAT:
        refuse(where, "format", f"{doc['format']!r} is not a known format ({JOB_FORMAT!r})", "J1")
    if not isinstance(doc["job"], str) or not _JOB_NAME.fullmatch(doc["job"]):
        refuse(where, "job", f"name {doc['job']!r} is not [A-Za-z0-9._-]{{1,64}}", "J1")
    _text(where, "process", "process", doc["process"])
    if isinstance(doc["id_code"], bool) or not isinstance(doc["id_code"], int):
        refuse(where, "id_code", f"{doc['id_code']!r} is not an integer", "J1")
    layers = doc["layers"]
    if not isinstance(layers, list) or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0
                                               for n in layers):
        refuse(where, "layers", f"{layers!r} is not a list of positive integers", "J1")
    inks = _keys(where, "inks", doc["inks"], {"RH_ohm_sq", "RL_ohm_sq"})
    for key, value in inks.items():
        _positive(where, "inks", key, value)
    return tuple(layers), inks


def parse_document(where: str, doc: dict) -> PrintJob:
    """The records of a job document; ConfigError (rule J1) on the first malformed item."""
    doc = _keys(where, "job", doc, _TOP_KEYS)
    layers, inks = _header(where, doc)
    outputs = _keys(where, "outputs", doc["outputs"], {"classes"})
    classes = outputs["classes"]
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        refuse(where, "outputs", "classes is not a list of net names", "J1")
    for key in ("resistor", "cell"):
        if not isinstance(doc[key], list):
            refuse(where, key, "is not an array of tables", "J1")
    return PrintJob(process=doc["process"], job=doc["job"], id_code=doc["id_code"], layers=layers,
                    rh_ohm_sq=float(inks["RH_ohm_sq"]), rl_ohm_sq=float(inks["RL_ohm_sq"]),
                    pads=_pads(where, doc["pads"]), classes=tuple(classes),
                    resistors=tuple(_crossbar(where, r, i) for i, r in enumerate(doc["resistor"])),
                    cells=tuple(_cell(where, c, i) for i, c in enumerate(doc["cell"])), format=doc["format"])
