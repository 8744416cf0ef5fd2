"""Rules J7 and J8 of the print job (contract 3.2, 2.1, 2.5): the pad map and the sample's limits."""

from __future__ import annotations

import re
from collections import Counter

from labctl.families.printed.job_records import PrintJob
from labctl.families.printed.job_rules import ID_CODES, MAX_CELLS, MAX_INPUTS, MAX_SENSE, column_nodes, refuse

RESERVED_PADS = ("D24", "S45", "S46")
"""ID drive and ID taps (contract 2.1)."""
_PAD = re.compile(r"(D|S|VDD|VSS)(\d{2})")
_SENSE_ROLES = ("output", "probe", "probe-hiz")


def _pad_number(pad: str) -> tuple[str, int] | None:
    m = _PAD.fullmatch(pad)
    return (m.group(1), int(m.group(2))) if m else None


def _allowed(role: str, bank: str, number: int) -> bool:
    """Where each role may sit (J7): inputs D01-D22, bias D23, sense nets S01-S44, rails VDD01/VSS01."""
    return {"input": bank == "D" and 1 <= number <= 22, "bias": bank == "D" and number == 23,
            "output": bank == "S" and 1 <= number <= 44, "probe": bank == "S" and 1 <= number <= 44,
            "probe-hiz": bank == "S" and 1 <= number <= 44, "vdd": bank == "VDD" and number == 1,
            "vss": bank == "VSS" and number == 1}.get(role, False)


def _known_nets(job: PrintJob) -> set[str]:
    nets = {f"x.{i}" for i in range(job.layers[0])} | {"bias", "GND", "VDD", "VSS"}
    nets |= {c.net_out for c in job.cells} | {z for _, z in column_nodes(job)}
    return nets


def _expected_net(role: str, net: str) -> str | None:
    """What a pad of ``role`` must reach, where that is fixed."""
    return {"bias": "bias", "vdd": "VDD", "vss": "VSS"}.get(role)


def check_j7(where: str, job: PrintJob) -> None:
    """J7: every pad in its bank for its role, reserved pads unused, one pad per net, classes on S pads."""
    known = _known_nets(job)
    for p in job.pads:
        item = f"pad {p.pad}"
        if p.pad in RESERVED_PADS:
            refuse(where, item, "is reserved (ID ladder)", "J7")
        where_ = _pad_number(p.pad)
        if where_ is None or not _allowed(p.role, *where_):
            refuse(where, item, f"cannot carry role {p.role!r}", "J7")
        if p.net not in known:
            refuse(where, item, f"net {p.net!r} is not a net of this job", "J7")
        expected = _expected_net(p.role, p.net)
        if (expected and p.net != expected) or (p.role == "input" and not p.net.startswith("x.")):
            refuse(where, item, f"net {p.net!r} does not fit role {p.role!r}", "J7")
    for net, count in Counter(p.net for p in job.pads).items():
        if count > 1:
            refuse(where, f"net {net}", f"reaches {count} pads", "J7")
    roles = {p.net: p.role for p in job.pads}
    for net in job.classes:
        if roles.get(net) != "output":
            refuse(where, f"class output {net}", "has no output pad on S01 to S44", "J7")
    for net in ("VDD", "VSS"):
        if net not in roles:
            refuse(where, f"net {net}", f"has no pad ({net}01)", "J7")


def check_j8(where: str, job: PrintJob) -> None:
    """J8: at most 22 inputs, 44 sense nets, 64 cells; id_code 25 to 124 (2.2, 2.5)."""
    inputs = sum(p.role == "input" for p in job.pads)
    sense = sum(p.role in _SENSE_ROLES for p in job.pads)
    if inputs > MAX_INPUTS or job.layers[0] > MAX_INPUTS:
        refuse(where, "layers", f"{max(inputs, job.layers[0])} inputs exceed {MAX_INPUTS}", "J8")
    if sense > MAX_SENSE:
        refuse(where, "pads", f"{sense} sense nets exceed {MAX_SENSE}", "J8")
    if len(job.cells) > MAX_CELLS:
        refuse(where, "cell", f"{len(job.cells)} cells exceed {MAX_CELLS}", "J8")
    if not ID_CODES[0] <= job.id_code <= ID_CODES[1]:
        refuse(where, "id_code", f"{job.id_code} is outside {ID_CODES[0]} to {ID_CODES[1]}", "J8")
