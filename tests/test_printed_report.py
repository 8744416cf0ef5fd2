"""`labctl report` on a printed process calibration, whole or interrupted (issue 13, "Report ... as for CMNA").

A simulated PNC-TS sample of run sim-7 is characterised once per session with
the quick plan (about 5 s; the GUI tests reuse it), and once more stopped
after three structures (the partial file an interrupted run leaves). The
report must write readable PNG figures, name every fitted structure with the
etas the file holds, show the file's eps and sheet resistances, list every
flagged structure with the reason, and say what a partial file lacks.
"""

from __future__ import annotations

import base64
import functools
import io
import re
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from test_bad_input import fails

from labctl.cli import main
from labctl.errors import DataFileError
from labctl.families.printed.characterisation import ProcessOutcome, SweepPlan, characterise_process
from labctl.families.printed.report.page import write_report
from labctl.families.printed.sim.serve import start

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
STOP_AFTER = 3
"""Structures an interrupted run finishes before it is stopped."""


class Stop(Exception):
    """Stands for Ctrl-C in the middle of a characterisation."""


@functools.cache
def characterised(folder: Path) -> ProcessOutcome:
    """Run sim-7's PNC-TS sample characterised into ``folder/process.h5`` (once per session and folder)."""
    folder.mkdir(parents=True, exist_ok=True)
    with start("PNC-TS", 7) as sample:
        bench = sample.write_bench_file(folder / "ts.toml")
        return characterise_process(bench, folder / "process.h5", plan=SweepPlan.quick(), pause=sample.clock.advance)


@functools.cache
def interrupted(folder: Path) -> Path:
    """The partial file of a run stopped after ``STOP_AFTER`` circuit structures."""
    def stop(stage: str, done: int, total: int) -> None:
        if stage == "structures" and done == STOP_AFTER:
            raise Stop

    folder.mkdir(parents=True, exist_ok=True)
    with start("PNC-TS", 7) as sample:
        bench = sample.write_bench_file(folder / "ts.toml")
        with pytest.raises(Stop):
            characterise_process(bench, folder / "process.h5", plan=SweepPlan.quick(), pause=sample.clock.advance,
                                 progress=stop)
    return folder / "process.partial.h5"


def shared(tmp_path_factory, name: str) -> Path:
    """A folder every test module of the session finds again (so the runs above happen once)."""
    return tmp_path_factory.getbasetemp() / name


@pytest.fixture(scope="module")
def process_h5(tmp_path_factory) -> Path:
    return characterised(shared(tmp_path_factory, "printed-process")).path


@pytest.fixture(scope="module")
def partial_h5(tmp_path_factory) -> Path:
    return interrupted(shared(tmp_path_factory, "printed-interrupted"))


@pytest.fixture(scope="module")
def full_report(process_h5: Path, tmp_path_factory) -> tuple[str, list[Path]]:
    """The complete file's report, written once for the tests that read it: (html, PNG files)."""
    written = write_report(process_h5, tmp_path_factory.mktemp("report"))
    return written.html_path.read_text(encoding="utf-8"), list(written.paths[1:])


def report(capsys, *argv) -> tuple[str, str, list[Path]]:
    """Run ``labctl report``; (html, stderr, every file it names) after asserting success."""
    capsys.readouterr()
    assert main(["--no-progress", "report", *map(str, argv)]) == 0
    captured = capsys.readouterr()
    named = [Path(p) for p in re.fullmatch(r"report: (.+)\n", captured.out).group(1).split(" and ")]
    assert named[0].suffix == ".html"
    return named[0].read_text(encoding="utf-8"), captured.err, named


def section(html: str, title: str) -> str:
    """The HTML of one section, from its heading to the next."""
    start = html.index(f"<h2>{title}</h2>")
    end = html.find("<h2>", start + 1)
    return html[start:end if end > 0 else None]


def assert_readable_png(data: bytes) -> None:
    from matplotlib.image import imread

    assert data.startswith(PNG_MAGIC)
    pixels = imread(io.BytesIO(data))
    assert pixels.shape[0] > 200 and pixels.shape[1] > 800 and pixels[..., :3].std() > 0.05  # drawn, not blank


def summary_value(html: str, label: str) -> str:
    return re.search(rf"<td class='l'>{label}</td><td class='l'>([^<]+)</td>", html).group(1)


def test_the_report_shows_every_fit_of_the_file(full_report, process_h5: Path) -> None:
    html, pngs = full_report
    assert [p.name for p in pngs] == [f"process-report-{t}.png" for t in
                                      ("sweeps-ACT", "sweeps-NEG", "resistors", "eps", "maps")]
    for png in pngs:
        assert_readable_png(png.read_bytes())
    embedded = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html)
    assert [base64.b64decode(b) for b in embedded] == [p.read_bytes() for p in pngs]  # self-contained
    with h5py.File(process_h5) as f:
        fits = [row for kind in ("ACT", "NEG") for row in f[f"fits/{kind}"][()]]
        eps, eps_se = f.attrs["eps"], f.attrs["eps_se"]
        rh, rh_se = f["calibration"].attrs["rh_ohm_sq"], f["calibration"].attrs["rh_ohm_sq_se"]
    table = section(html, "Eta fits")
    assert len(fits) == 35
    for row in fits:
        cells = re.search(rf"<td class='l'>{row['id'].decode()}</td>(.*?)</tr>", table).group(1)
        shown = np.array([float(v) for v in re.findall(r"<td>(-?[0-9.]+) ± [0-9.]+</td>", cells)[:4]])
        assert len(shown) == 4 and np.all(np.abs(shown - row["eta"]) <= 0.051 * row["eta_se"])  # se's precision
    value, se = (float(v) for v in summary_value(html, "eps").split(" ± "))
    assert value == pytest.approx(eps, abs=0.051 * eps_se) and se == pytest.approx(eps_se, abs=0.051 * eps_se)
    assert float(summary_value(html, "sheet resistance RH").split(" ± ")[0]) == pytest.approx(rh, abs=0.051 * rh_se)


def test_flagged_structures_are_listed_with_the_reason(full_report, process_h5: Path) -> None:
    html, _ = full_report
    with h5py.File(process_h5) as f:
        flagged = {r["id"].decode(): r["flags"].decode() for kind in ("ACT", "NEG") for r in f[f"fits/{kind}"][()]
                   if r["flags"]}
    table = section(html, "Flagged structures")
    assert flagged and table.count("<tr>") == len(flagged) + 1  # the header, then one row each
    for sid, flags in flagged.items():
        assert f"<td class='l'>{sid}</td>" in table and flags in table
    assert "transition_outside" in flagged["N05"]  # designed to switch beyond the window (contract 2.3)
    assert "lies outside the +-1.5 V sweep window" in table


def test_an_interrupted_run_gives_a_report_naming_what_is_missing(capsys, partial_h5: Path, tmp_path: Path) -> None:
    html, err, named = report(capsys, partial_h5, "--out", tmp_path)
    assert named[0].name == "process.partial-report.html"
    lines = err.strip().splitlines()
    assert all(line.startswith("partial report: ") for line in lines) and len(lines) == 2
    assert "fits missing" in lines[0] and "fits missing" in html
    assert f"{35 - STOP_AFTER} of 35 structures not measured" in lines[1]
    assert "A04" in lines[1] and "N17" in lines[1] and "A03" not in lines[1]
    for title in ("Eta fits", "Resistor structures", "Variation eps", "Process maps"):
        assert "not available" in section(html, title)
    sweeps = [p for p in named[1:] if "sweeps" in p.name]
    assert len(sweeps) == 2 and len(named) == 3  # the sweeps measured (and the ones not reached), nothing fitted
    for png in sweeps:
        assert_readable_png(png.read_bytes())


def test_a_file_without_calibration_still_reports_its_fits(capsys, process_h5: Path, tmp_path: Path) -> None:
    copy = tmp_path / "no-maps.h5"
    shutil.copy(process_h5, copy)
    with h5py.File(copy, "r+") as f:
        del f["calibration"]
    html, err, named = report(capsys, copy)
    assert "calibration missing" in err and "not available" in section(html, "Process maps")
    assert "<img alt='Eta fits'" not in html and "<td class='l'>A01</td>" in section(html, "Eta fits")
    assert [p.name for p in named[1:]] == ["no-maps-report-sweeps-ACT.png", "no-maps-report-sweeps-NEG.png",
                                           "no-maps-report-resistors.png", "no-maps-report-eps.png"]


def test_other_files_are_refused_in_one_line(capsys, tmp_path: Path) -> None:
    design = tmp_path / "design.h5"
    with h5py.File(design, "w") as f:
        f.attrs.update({"family": "printed", "kind": "design"})
    fails(capsys, "report", design, match=r"design\.h5: not a printed process characterisation .*kind='design'")
    with pytest.raises(DataFileError, match="no such file"):
        write_report(tmp_path / "nope.h5")
