"""Training: loss and training accuracy per epoch for every weight set of the recipe.

The trainer reports ``progress(epoch, n_epochs, loss, accuracy)`` after each
epoch; the tailored and the naive set
get one curve each.
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

from labctl.gui.plots import plot_widget, weight_colour


class TrainingPanel(QWidget):
    title = "Training"
    stages = ("train",)

    def __init__(self) -> None:
        super().__init__()
        self.header = QLabel("No training yet.")
        self.header.setWordWrap(True)
        self.loss = plot_widget("Training loss", "epoch", "loss")
        self.accuracy = plot_widget("Training accuracy (model)", "epoch", "accuracy", None, "%")
        self.accuracy.setYRange(0, 100)
        self.loss.addLegend(offset=(-10, 10))  # losses fall: the legend goes top right
        self.accuracy.addLegend(offset=(-10, -10))  # accuracies rise: bottom right
        self._curves: dict[str, tuple[pg.PlotDataItem, pg.PlotDataItem, list, list, list]] = {}
        self._done: dict[str, str] = {}
        plots = QHBoxLayout()
        plots.addWidget(self.loss)
        plots.addWidget(self.accuracy)
        layout = QVBoxLayout(self)
        layout.addWidget(self.header)
        layout.addLayout(plots)

    def clear(self) -> None:
        self.loss.clear()
        self.accuracy.clear()
        self._curves.clear()
        self._done.clear()
        self.header.setText("No training yet.")

    def add_epoch(self, name: str, epoch: int, n_epochs: int, loss: float, accuracy: float) -> None:
        if name not in self._curves:
            pen = pg.mkPen(weight_colour(name, len(self._curves)), width=2)
            self._curves[name] = (self.loss.plot(pen=pen, name=name), self.accuracy.plot(pen=pen, name=name),
                                  [], [], [])
        loss_curve, acc_curve, epochs, losses, accs = self._curves[name]
        epochs.append(epoch)
        losses.append(loss)
        accs.append(100.0 * accuracy)
        loss_curve.setData(epochs, losses)
        acc_curve.setData(epochs, accs)
        self._show_header(f"training <b>{name}</b>: epoch {epoch} of {n_epochs}, loss {loss:.4g}, "
                          f"training accuracy {accuracy:.1%}")

    def finished(self, name: str, weights, report) -> None:
        """A train step ended: the family's weights and training report, as far as they say (any may be None)."""
        naive = getattr(weights, "naive", None)
        kind = "" if naive is None else (" (trained on nominal gains)" if naive else " (tailored to the measured die)")
        parts = [f"<b>{name}</b>{kind}"]
        accuracy, dataset = getattr(weights, "software_accuracy", None), getattr(weights, "dataset", None)
        if accuracy is not None:
            parts.append(f"software accuracy {accuracy:.1%}" + (f" on the {dataset} test split" if dataset else ""))
        if getattr(report, "epochs", None) is not None:
            parts.append(f"{report.epochs} epochs, the best epoch kept")
        if getattr(report, "seconds", None) is not None:
            parts.append(f"{report.seconds:.0f} s")
        self._done[name] = f"{parts[0]}: " + ("; ".join(parts[1:]) if len(parts) > 1 else "trained")
        self._show_header("")

    def _show_header(self, running: str) -> None:
        self.header.setText("<br>".join([*self._done.values(), running] if running else self._done.values()))
