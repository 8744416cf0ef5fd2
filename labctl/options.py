"""Command-line options generated from the families' step-option schemas, and the way back.

A family states each stage's options once, as a pydantic model
(:class:`~labctl.families.seam.StepOptions`); recipes validate against it and
this module turns it into argparse options, so a choice, a bound or a default
is never written twice. When several families are installed, an option they
share appears once; the family that serves the bench validates the values
(its own choices and bounds) and says in one line what is wrong.
"""

from __future__ import annotations

import argparse
import types
import typing
from pathlib import Path
from typing import Any, Iterable, Literal

from pydantic import ValidationError
from pydantic.fields import FieldInfo

from labctl.errors import ConfigError
from labctl.families.seam import StepOptions


def _extra(info: FieldInfo) -> dict[str, Any]:
    extra = info.json_schema_extra
    return dict(extra) if isinstance(extra, dict) else {}


def flag_of(name: str, info: FieldInfo) -> str:
    return str(_extra(info).get("flag", "--" + name.replace("_", "-")))


def on_cli(info: FieldInfo) -> bool:
    return bool(_extra(info).get("cli", True))


def in_recipes(info: FieldInfo) -> bool:
    return bool(_extra(info).get("recipe", True))


def _base_type(annotation: Any) -> Any:
    """The annotation without ``| None``."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0]
    return annotation


def _choices(annotation: Any) -> tuple | None:
    base = _base_type(annotation)
    return typing.get_args(base) if typing.get_origin(base) is Literal else None


def _is_list(annotation: Any) -> bool:
    return typing.get_origin(_base_type(annotation)) is list


def add_options(parser: argparse.ArgumentParser, models: Iterable[type[StepOptions]]) -> None:
    """Add every command-line field of ``models`` to ``parser`` (a field several models share, once).

    Values the user does not give stay unset (``None``), so the family's own
    default applies; the help text shows it.
    """
    infos: dict[str, tuple[FieldInfo, list[tuple]]] = {}
    for model in models:
        for name, info in model.model_fields.items():
            if not on_cli(info):
                continue
            choices = _choices(info.annotation)
            infos.setdefault(name, (info, []))[1].append(choices)
    for name, (info, choice_sets) in infos.items():
        kwargs: dict[str, Any] = {"dest": name, "default": None}
        if _base_type(info.annotation) is bool:
            kwargs["action"] = "store_true"
        else:
            choices = sorted({c for cs in choice_sets if cs for c in cs}) if all(choice_sets) else None
            if choices:
                kwargs["choices"] = choices
            if "metavar" in _extra(info):
                kwargs["metavar"] = _extra(info)["metavar"]
            if _base_type(info.annotation) is Path:
                kwargs["type"] = Path
        default = "" if info.is_required() or info.default in (None, False) else f" (default {_show(info.default)})"
        kwargs["help"] = (info.description or "") + default
        if info.is_required():
            kwargs["required"] = True
        parser.add_argument(flag_of(name, info), **kwargs)
    parser.set_defaults(family_options={name: flag_of(name, info) for name, (info, _) in infos.items()})


def _show(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def options_from_args(model: type[StepOptions], args: argparse.Namespace) -> StepOptions:
    """The family's options from parsed arguments: what was given, the model's defaults for the rest.

    An option another family offers but this one does not is refused, not ignored.
    """
    for name, flag in getattr(args, "family_options", {}).items():
        if name not in model.model_fields and getattr(args, name, None) not in (None, False):
            raise ConfigError(f"{flag} is not an option here")
    given: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        value = getattr(args, name, None)
        if value is None or not on_cli(info):
            continue
        if _is_list(info.annotation) and isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        given[name] = value
    return validate(model, given, lambda key: flag_of(key, model.model_fields[key]) if key in model.model_fields
                    else key)


def validate(model: type[StepOptions], values: dict[str, Any], name_of=lambda key: key) -> StepOptions:
    """``model`` from ``values``; a problem is one :class:`ConfigError` line naming the option."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = str(err["loc"][0]) if err["loc"] else ""
        item = "".join(f" (item {i + 1})" for i in err["loc"][1:] if isinstance(i, int))
        msg = {"extra_forbidden": "is not an option here", "missing": "is missing"}.get(err["type"], err["msg"])
        raise ConfigError(f"{name_of(key)}{item}: {msg}".strip()) from None
