"""`labctl report` summarises a characterisation file, whole or partial (issue 5, "Report").

One simulated CMNA-777 die is characterised (about 2 s); copies of its file
stand for the other cases: fits removed (a run interrupted before the
analysis), the linear-range datasets added, nothing recorded at all. The
report must name the die, embed its figures, show per-layer numbers that an
independent computation from the file reproduces, say what is missing, and
refuse with one line only a file it cannot report anything from.
"""

from __future__ import annotations

import base64
import re
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from test_bad_input import fails

from labctl.families.cmna.bench import Bench
from labctl.families.cmna.characterisation.characterise import characterise
from labctl.cli import main
from labctl.families.cmna.sim.bench import SimulatedBench

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def die_h5(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("die") / "die.h5"
    with SimulatedBench("CMNA-777", seed=5) as sim:
        with Bench.from_file(sim.write_bench_file(out.parent / "bench.toml")) as bench:
            characterise(bench, out)
    return out


def variant(die_h5: Path, folder: Path, name: str, edit) -> Path:
    """A copy of the characterisation file, changed by ``edit(h5py.File)``."""
    path = folder / name
    shutil.copy(die_h5, path)
    with h5py.File(path, "r+") as f:
        edit(f)
    return path


def report(capsys, *argv) -> tuple[str, str, Path, Path]:
    """Run ``labctl report``; return (html, stderr, html path, png path) after asserting success."""
    capsys.readouterr()
    assert main(["--no-progress", "report", *map(str, argv)]) == 0
    captured = capsys.readouterr()
    html_path, png_path = (Path(p) for p in re.search(r"report: (\S+) and (\S+)", captured.out).groups())
    assert png_path.read_bytes().startswith(PNG_MAGIC)
    return html_path.read_text(), captured.err, html_path, png_path


def embedded_pngs(html: str) -> list[bytes]:
    return [base64.b64decode(b) for b in re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html)]


def test_full_report_next_to_the_input(capsys, die_h5: Path) -> None:
    html, err, html_path, png_path = report(capsys, die_h5)
    assert (html_path, png_path) == (die_h5.parent / "die-report.html", die_h5.parent / "die-report.png")
    assert err == ""
    assert "CMNA-777-000005" in html
    pngs = embedded_pngs(html)
    assert len(pngs) >= 4 and all(p.startswith(PNG_MAGIC) for p in pngs)  # gains, residuals, drift, raw
    for section in ("Gain histograms", "Fit residuals", "Worst neurons", "Linear range", "Drift", "Raw readings"):
        assert f"<h2>{section}</h2>" in html
    assert "src='http" not in html and "<link" not in html  # self-contained


def test_summary_table_matches_the_file(capsys, die_h5: Path, tmp_path: Path) -> None:
    html, *_ = report(capsys, die_h5, "--out", tmp_path)
    with h5py.File(die_h5) as f:
        t = np.concatenate([f["raw/mon"]["time_s"], f["raw/c2f"]["time_s"]])
        assert f"<td class='l'>{t.max() - t.min():.1f} s</td>" in html
        assert f"{len(f['raw/configs'])} finished of {len(f['raw/configs'])} recorded" in html
        for l in range(3):
            g = f[f"calibration/layer_{l}"]
            a, sa, m, sm = (g[k][()] for k in ("a_plus", "a_plus_std", "a_minus", "a_minus_std"))
            rms_a = np.sqrt(np.mean((sa / a) ** 2))
            ratio_rel = np.hypot(sm / m, sa / a)
            rms_ratio = f"{np.sqrt(np.mean(ratio_rel[np.isfinite(ratio_rel)] ** 2)):.2%}" if l < 2 else "-"
            flagged = np.any([f[f"flags/layer_{l}"][k][()] for k in f[f"flags/layer_{l}"]], axis=0).sum()
            row = f"<tr><td>{l}</td><td>7</td><td>{rms_a:.2%}</td><td>{rms_ratio}</td><td>{flagged}</td>"
            assert row in html


def test_raw_data_only_gives_a_partial_report(capsys, die_h5: Path, tmp_path: Path) -> None:
    def drop_fits(f: h5py.File) -> None:
        for group in ("calibration", "methods", "flags"):
            del f[group]

    partial = variant(die_h5, tmp_path, "interrupted.h5", drop_fits)
    html, err, html_path, _ = report(capsys, partial)
    assert html_path.name == "interrupted-report.html"
    assert "fits missing" in err and err.count("\n") == 1
    assert "fits missing" in html and "CMNA-777-000005" in html
    assert "<h2>Drift</h2>" in html and "<h2>Raw readings</h2>" in html
    assert "<h2>Gain histograms</h2>" not in html
    assert len(embedded_pngs(html)) == 2


LINEAR_RANGE = ("compression_onset_a", "compression_onset_a_std", "max_input_a")


def drop_linear_range(f: h5py.File) -> None:
    for l in range(3):
        for name in LINEAR_RANGE:
            f.pop(f"calibration/layer_{l}/{name}", None)


def test_linear_range_is_shown_when_measured(capsys, die_h5: Path, tmp_path: Path) -> None:
    def set_onsets(f: h5py.File) -> None:
        drop_linear_range(f)
        for l in range(3):
            g = f[f"calibration/layer_{l}"]
            g["compression_onset_a"] = np.r_[np.full(6, 300e-9), np.nan]
            g["compression_onset_a_std"] = np.full(7, 10e-9)
            g["max_input_a"] = np.r_[320e-9, np.full(6, 200e-9)]  # soma 0 driven past its onset

    absent, *_ = report(capsys, variant(die_h5, tmp_path, "no_onset.h5", drop_linear_range))
    assert "Linear range</h2><p class='note'>not measured" in absent
    present, *_ = report(capsys, variant(die_h5, tmp_path, "onset.h5", set_onsets))
    assert "<img alt='Linear range'" in present and "not measured: the file has no" not in present
    assert len(embedded_pngs(present)) == len(embedded_pngs(absent)) + 1
    assert "<tr><td>1</td><td>6 of 7</td><td>300</td><td>320</td><td>1</td></tr>" in present


def test_bad_input_is_one_line_and_non_zero(capsys, die_h5: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not an HDF5 file\n" * 10)
    fails(capsys, "report", junk, match=r"junk\.h5: not a readable HDF5 file")
    fails(capsys, "report", tmp_path / "nope.h5", match=r"nope\.h5: no such file")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = 1
    fails(capsys, "report", tmp_path / "other.h5", match=r"other\.h5: has no /die")

    def empty_run(f: h5py.File) -> None:  # interrupted before the first reading
        for group in ("calibration", "methods", "flags"):
            del f[group]
        for table in f["raw"].values():
            table.resize(0, axis=0)

    fails(capsys, "report", variant(die_h5, tmp_path, "empty.h5", empty_run), match=r"nothing to report")
    assert not list(tmp_path.glob("*-report.*"))
