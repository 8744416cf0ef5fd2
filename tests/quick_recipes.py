"""The short Iris recipe several tests run: a quick characterisation, training, then the steps a test needs.

One text, so that what "a quick recipe" measures and trains is the same in every test that runs one.
"""

from __future__ import annotations


def iris_recipe(name: str, *, epochs: int | None, then: str) -> str:
    """A CMNA-777 recipe: characterise (3 levels, 4 configurations), train "tailored" on Iris (``epochs``;
    None: the trainer's default), then the TOML steps in ``then``."""
    train_epochs = "" if epochs is None else f"epochs = {epochs}\n"
    return (f'\nname = "{name}"\npart = "CMNA-777"\n\n'
            '[[steps]]\nkind = "characterise"\nlevels = 3\nconfigs = 4\n\n'
            f'[[steps]]\nkind = "train"\nname = "tailored"\ndataset = "iris"\n{train_epochs}\n{then}')
