"""Print jobs (contract 3): a valid job round-trips; each rule J1-J8 refuses in its own one line."""

from __future__ import annotations

import copy
import tomllib

import pytest

from labctl.errors import ConfigError
from labctl.families.printed.print_job import job_toml, read_job, validate_document, write_job


def rh(w: int, l: int) -> dict:
    return {"layer": "RH", "W_um": w, "L_um": l, "R_ohm": 50_000.0 * l / w}


def rl(w: int, l: int) -> dict:
    return {"layer": "RL", "W_um": w, "L_um": l, "R_ohm": 25.0 * l / w}


def xbar(id_: str, a: str, b: str, w: int = 50, l: int = 1000) -> dict:
    return {"id": id_, "a": a, "b": b, **rh(w, l)}


def act(j: int) -> dict:
    return {"id": f"ACT.1.{j}", "type": "ACT", "in": f"z.1.{j}", "out": f"a.1.{j}", "R1": rh(50, 1000),
            "R2": rh(1000, 300), "T1": {"W_um": 90, "L_um": 60}, "T2": {"W_um": 490, "L_um": 35}}


def small_job() -> dict:
    """Layers [2, 2]; input 1 negated on column 0 (one NEG); nominal inks."""
    return {
        "format": "pnc-print-job/1", "process": "sim-7", "job": "tiny-a0", "id_code": 30, "layers": [2, 2],
        "inks": {"RH_ohm_sq": 50_000.0, "RL_ohm_sq": 25.0},
        "pads": {"D01": {"net": "x.0", "role": "input"}, "D02": {"net": "x.1", "role": "input"},
                 "D23": {"net": "bias", "role": "bias"}, "S01": {"net": "a.1.0", "role": "output"},
                 "S02": {"net": "a.1.1", "role": "output"}, "S03": {"net": "z.1.0", "role": "probe-hiz"},
                 "VDD01": {"net": "VDD", "role": "vdd"}, "VSS01": {"net": "VSS", "role": "vss"}},
        "outputs": {"classes": ["a.1.0", "a.1.1"]},
        "resistor": [xbar("X1.p0.0", "x.0", "z.1.0"), xbar("X1.n1.0", "n.1.1", "z.1.0", 50, 2000),
                     xbar("X1.b.0", "bias", "z.1.0"), xbar("X1.g.0", "GND", "z.1.0", 100, 1000),
                     xbar("X1.p0.1", "x.0", "z.1.1"), xbar("X1.p1.1", "x.1", "z.1.1", 50, 3000)],
        "cell": [act(0), act(1),
                 {"id": "NEG.1.1", "type": "NEG", "in": "x.1", "out": "n.1.1", "R1": rl(100, 800),
                  "R2": rl(200, 400), "R3": rh(50, 200), "R4": rh(100, 200), "R5": rh(100, 200),
                  "T": {"W_um": 500, "L_um": 40}}],
    }


def written(tmp_path, doc: dict):
    path = tmp_path / "job.toml"
    path.write_text(job_toml(doc))
    return path


def test_a_valid_job_round_trips(tmp_path):
    path = written(tmp_path, small_job())
    job = read_job(path, process="sim-7")
    assert job.layers == (2, 2) and len(job.resistors) == 6 and len(job.cells) == 3
    assert job.cells[2].component_values() == {"R1": 200.0, "R2": 50.0, "R3": 200e3, "R4": 100e3, "R5": 100e3,
                                               "W": 500.0, "L": 40.0}
    again = tmp_path / "again.toml"
    write_job(job, again, process="sim-7")
    assert tomllib.loads(again.read_text()) == tomllib.loads(path.read_text())
    assert read_job(again) == job


def _mutate(doc: dict, change) -> dict:
    doc = copy.deepcopy(doc)
    change(doc)
    return doc


CASES = [
    ("J1", lambda d: d.update(colour="red"), "job.toml: job: unknown key 'colour' (rule J1)"),
    ("J1", lambda d: d.update(format="pnc-print-job/9"),
     "job.toml: format: 'pnc-print-job/9' is not a known format ('pnc-print-job/1') (rule J1)"),
    ("J1", lambda d: d["resistor"][0].update(R_ohm=-1.0),
     "job.toml: resistor X1.p0.0: R_ohm -1.0 is not a finite positive number (rule J1)"),
    ("J2", lambda d: d.update(process="sim-8"),
     "job.toml: process: 'sim-8' is not the run it is submitted to ('sim-7') (rule J2)"),
    ("J2", lambda d: d["inks"].update(RH_ohm_sq=70_000.0),
     "job.toml: inks: RH_ohm_sq 70000 is outside +-20 % of nominal 50000 (rule J2)"),
    ("J3", lambda d: d["resistor"][0].update(W_um=49, R_ohm=50_000.0 * 1000 / 49),
     "job.toml: resistor X1.p0.0: W_um 49 is outside 50 to 2000 um on RH (rule J3)"),
    ("J3", lambda d: d["resistor"][0].update(R_ohm=1.01e6),
     "job.toml: resistor X1.p0.0: R_ohm 1.01e+06 is not within 0.5 % of R_s L / W = 1e+06 (rule J3)"),
    ("J4", lambda d: d["resistor"][0].update(rh(2000, 200)),
     "job.toml: resistor X1.p0.0: R_ohm 5.0e3 is outside the crossbar range 1.0e4 to 1.0e7 ohm (rule J4)"),
    ("J4", lambda d: d["resistor"].append(xbar("X1.p1.0", "x.1", "z.1.0")),
     "job.toml: resistor X1.p1.0: both the positive and the negated line of x.1 reach z.1.0 (rule J4)"),
    ("J5", lambda d: d["cell"][0].update(R1=rh(50, 3000)),
     "job.toml: cell ACT.1.0: R1 3e+06 ohm is outside the printable range 250000 to 2.05e+06 ohm (rule J5)"),
    ("J5", lambda d: d["cell"][2].update(R3=rh(100, 150)),
     "job.toml: cell NEG.1.1: breaks the NEG constraint R3 > R4 (rule J5)"),
    ("J6", lambda d: d["cell"].pop(1),
     "job.toml: net z.1.1: column node drives 0 ACT cells, not exactly one (rule J6)"),
    ("J6", lambda d: d["resistor"].pop(1), "job.toml: cell NEG.1.1: its output n.1.1 feeds no resistor (rule J6)"),
    ("J7", lambda d: d["pads"].update(D05=d["pads"].pop("D23")),
     "job.toml: pad D05: cannot carry role 'bias' (rule J7)"),
    ("J7", lambda d: d["pads"].update(D24=d["pads"].pop("D02")), "job.toml: pad D24: is reserved (ID ladder) (rule J7)"),
    ("J8", lambda d: d.update(id_code=10), "job.toml: id_code: 10 is outside 25 to 124 (rule J8)"),
]


@pytest.mark.parametrize("rule, change, message", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_each_rule_refuses_in_one_line_naming_file_item_and_rule(tmp_path, rule, change, message):
    path = written(tmp_path, _mutate(small_job(), change))
    with pytest.raises(ConfigError) as info:
        read_job(path, process="sim-7")
    assert str(info.value) == f"{path}: " + message[len("job.toml: "):]
    assert f"(rule {rule})" in str(info.value) and "\n" not in str(info.value)


def test_write_job_refuses_before_writing(tmp_path):
    job = validate_document(small_job(), "x")
    bad = _mutate(small_job(), lambda d: d["cell"][0].update(R1=rh(50, 3000)))
    from labctl.families.printed.job_parse import parse_document
    out = tmp_path / "bad.toml"
    with pytest.raises(ConfigError, match=r"bad.toml: cell ACT.1.0: R1 .* \(rule J5\)"):
        write_job(parse_document("x", bad), out)
    assert not out.exists() and list(tmp_path.iterdir()) == []
    write_job(job, out)
    assert out.exists()
