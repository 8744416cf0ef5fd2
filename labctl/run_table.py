"""The accuracy table printed at the end of a recipe run (``labctl run``, ``labctl demo``)."""

from __future__ import annotations

from rich.table import Table

from labctl.recipes import RunResult


def accuracy_table(result: RunResult, title: str) -> Table:
    """Each trained weight set: its data set, software accuracy and accuracy measured on the device."""
    table = Table(title=title)
    for column in ("weights", "data set", "software model", "on chip", "test samples"):
        table.add_column(column, justify="left" if column in ("weights", "data set") else "right")
    for name, trained in result.trained.items():
        programmed = result.on_chip.get(name)
        on_chip = programmed.outcome if programmed else None
        measured = on_chip is not None and on_chip.on_chip_accuracy is not None
        table.add_row(name, trained.dataset, f"{trained.software_accuracy:.1%}",
                      f"{on_chip.on_chip_accuracy:.1%}" if measured else "-",
                      str(on_chip.n_samples) if measured else "-")
    return table
