"""Reading the TOML files a user writes (bench files, recipes, layouts) with one-line errors.

Both kinds of file fail the same ways before their schemas are even looked at
(unreadable, not TOML); one place words those errors, so that the user sees
the same sentence whichever file is wrong.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from labctl.errors import ConfigError


def read_user_file(path: str | Path, what: str) -> str:
    """The text of ``path``; ConfigError naming ``what`` (e.g. "bench file") and the file if unreadable."""
    p = Path(path)
    try:
        return p.read_text()
    except OSError as exc:
        raise ConfigError(f"{what} {p}: cannot read it ({exc.strerror or exc})") from None


def parse_toml(text: str, where: str) -> dict:
    """The TOML document in ``text``; ConfigError prefixed with ``where`` if it is not valid TOML."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML: {exc}") from None


SCHEMA_WORDS = {"extra_forbidden": "is not a known key", "missing": "is missing"}
"""Pydantic's error kinds a user meets most, in words."""


def schema_problem(error: dict, key: str | None = None) -> str:
    """``"<key> <problem>"`` for one pydantic error of a user's TOML file (``key``: its dotted location
    unless given), so every file names a wrong key in the same words."""
    key = key if key is not None else ".".join(str(part) for part in error["loc"]) or "(top level)"
    words = SCHEMA_WORDS.get(error["type"], error["msg"])
    return f"{key} {words.removeprefix('Value error, ')}"
