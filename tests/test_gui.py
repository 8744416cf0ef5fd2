"""The one-click window, driven offscreen with pytest-qt (QT_QPA_PLATFORM=offscreen, see conftest.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import h5py
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

from PySide6.QtCore import Qt  # noqa: E402

from labctl.gui.main_window import MainWindow  # noqa: E402
from labctl import families  # noqa: E402
from labctl.files import partial_path  # noqa: E402
from labctl.families.cmna.storage import read_raw  # noqa: E402
from labctl.session import load_session  # noqa: E402
from quick_recipes import iris_recipe

TESTS = Path(__file__).resolve().parent
PADS = ("VDD", "EXT_IN", "MON")
FAST = iris_recipe('fast', epochs=2, then=(
    '[[steps]]\n'
    'kind = "evaluate"\n'
    'weights = "tailored"\n'
))


@pytest.fixture
def window(qtbot, tmp_path):
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(FAST)
    w = MainWindow(recipe=recipe, runs_dir=tmp_path / "runs")
    qtbot.addWidget(w)
    w.show()
    w.start_simulated("CMNA-777", 3)
    qtbot.waitUntil(lambda: "CMNA-777-000003" in w.bench_panel.die.text(), timeout=15_000)
    yield w
    w.close()


def test_one_click_flow_shows_the_on_chip_accuracy(qtbot, window):
    qtbot.waitUntil(lambda: window.bench_panel.temperature.text().endswith("°C"), timeout=5_000)
    assert [window.tabs.tabText(i) for i in range(window.tabs.count())] == [
        "Bench", "Characterisation", "Training", "Programming", "Evaluation"]  # the family's panels in pipeline order
    assert window.bench_panel.flags.text() != "-"  # STATUS in words
    ticks: list[float] = []
    window.timer.timeout.connect(lambda: ticks.append(time.monotonic()))
    with qtbot.waitSignal(window.run_finished, timeout=180_000) as finished:
        qtbot.mouseClick(window.run_button, Qt.LeftButton)
        assert window.stop_button.isEnabled() and not window.run_button.isEnabled()
    assert finished.args == ["completed"]
    run = window.run_dir
    evaluation = json.loads((run / "evaluation_tailored.json").read_text())
    shown = window.evaluation.accuracy_text()
    assert f"on-chip accuracy {evaluation['on_chip_accuracy']:.1%}" in shown and "of 30" in shown
    assert window.tabs.currentWidget() is window.evaluation
    assert "Completed" in window.stage.text() and window.error_text() == ""
    assert "Characterised" in window.tab("Characterisation").header.text()
    assert "verified" in window.tab("Programming").header.text()
    assert "software accuracy" in window.training.header.text()
    assert load_session(run).outcome == "completed"
    # the GUI thread kept refreshing (every 250 ms) while the worker ran: the window never froze
    assert len(ticks) > 4 and max(b - a for a, b in zip(ticks, ticks[1:])) < 1.5
    assert window.run_button.isEnabled() and not window.stop_button.isEnabled()


def test_stop_mid_characterisation_leaves_outputs_off_and_the_file_valid(qtbot, window, tmp_path):
    recipe = tmp_path / "long.toml"
    recipe.write_text(FAST.replace("levels = 3\nconfigs = 4\n", "levels = 12\n"))  # a few seconds of readings
    window.recipe_path.setText(str(recipe))
    qtbot.mouseClick(window.run_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: window.stage.text().startswith(("EXT_IN sweep", "bias sweep", "chain configurations")),
                    timeout=30_000)
    assert window.sim.sim.channel_of("VDD").output_on  # the die is powered and being measured
    with qtbot.waitSignal(window.run_finished, timeout=60_000) as finished:
        qtbot.mouseClick(window.stop_button, Qt.LeftButton)
    assert finished.args == ["stopped"]
    assert not any(window.sim.sim.channel_of(pad).output_on for pad in PADS)
    assert not (window.run_dir / "die.h5").exists()  # a stopped characterisation stays partial
    die = partial_path(window.run_dir / "die.h5")
    assert len(read_raw(die).mon) > 0
    with h5py.File(die) as f:
        assert "calibration" not in f and f["die"].attrs["serial"] == "CMNA-777-000003"
    assert "every output is off" in window.error_text()
    assert load_session(window.run_dir).outcome == "stopped"


def test_errors_appear_in_the_window_as_one_line_of_words(qtbot, window, tmp_path):
    recipe = tmp_path / "other_part.toml"
    recipe.write_text(FAST.replace('part = "CMNA-777"', 'part = "CMNA-L"'))
    window.recipe_path.setText(str(recipe))
    with qtbot.waitSignal(window.run_finished, timeout=30_000) as finished:
        qtbot.mouseClick(window.run_button, Qt.LeftButton)
    assert finished.args == ["failed"]
    message = window.error_text()
    assert message.startswith("Error: recipe 'fast' is for CMNA-L, but the bench holds CMNA-777 CMNA-777-000003")
    assert "\n" not in message and "Traceback" not in message
    assert not any(window.sim.sim.channel_of(pad).output_on for pad in PADS)

    recipe.write_text('name = "x"\n[[steps]]\nkind = "characterise"\nlevels = "six"\n')
    qtbot.mouseClick(window.run_button, Qt.LeftButton)
    assert window.error_text().startswith(f"Error: recipe {recipe}, line 4: steps[0].levels:")
    assert not window.running


def test_the_shell_serves_a_family_without_gui_parts(qtbot, tmp_path, monkeypatch):
    """The toy family (gui = None) gets the shell: bench, training and evaluation tabs, its description shown."""
    monkeypatch.syspath_prepend(str(TESTS))
    monkeypatch.setenv("LABCTL_FAMILIES", "toy_family:FAMILY")
    from toy_family.device import make_device

    device = make_device(tmp_path / "device.json", seed=5)
    bench = tmp_path / "bench.toml"
    bench.write_text(f'family = "toy"\n[bridge]\nport = "toy://{device}"\n[instruments.meter]\n'
                     f'resource = "TCPIP0::127.0.0.1::5025::SOCKET"\n[roles]\nmeter = "meter:1"\n')
    assert families.named("toy").gui is None
    w = MainWindow(runs_dir=tmp_path / "runs")
    qtbot.addWidget(w)
    w.show()
    w.connect_bench_file(bench)
    assert w.error_text() == "" and w.run_button.isEnabled()
    assert [w.tabs.tabText(i) for i in range(w.tabs.count())] == ["Bench", "Training", "Evaluation"]
    qtbot.waitUntil(lambda: "TOY-0005" in w.bench_panel.die.text(), timeout=10_000)
    assert "toy TOY-4x3" in w.bench_panel.die.text()
    w.close()
