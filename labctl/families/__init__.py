"""Device families: the registry behind the seam (:mod:`labctl.families.seam`).

Families are found through the ``labctl.families`` entry point group (an
installed package declares ``name = "module:attr"``) and, for development and
tests, through ``LABCTL_FAMILIES=module:attr[,module:attr...]``. Each named
object must satisfy :class:`~labctl.families.seam.DeviceFamily`. Which family
serves a bench: the bench file's ``family`` key, else the first family that
recognises the device's IDENTIFY answer.
"""

from __future__ import annotations

import importlib
import os
from functools import lru_cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import Protocol

from labctl.errors import ConfigError
from labctl.families.seam import DeviceFamily


class BenchReference(Protocol):
    """What the resolution needs of a bench file (:class:`labctl.bench_file.BenchConfig`)."""

    path: Path | None
    family: str | None
    bridge_port: str
    bridge_timeout_s: float

ENTRY_POINT_GROUP = "labctl.families"
ENV_VARIABLE = "LABCTL_FAMILIES"


def load_object(spec: str, what: str) -> object:
    """Import ``module:attr``; a bad spec is a one-line :class:`ConfigError` naming ``what``."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"{what} {spec!r} must be module:attribute")
    try:
        obj: object = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"{what} {spec!r} cannot be loaded: {exc}") from None
    return obj


@lru_cache(maxsize=8)
def _families(env_value: str) -> dict[str, DeviceFamily]:
    specs = [ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)]
    specs += [s.strip() for s in env_value.split(",") if s.strip()]
    found: dict[str, DeviceFamily] = {}
    for spec in specs:
        family = load_object(spec, "device family")
        if not isinstance(family, DeviceFamily):
            raise ConfigError(f"device family {spec!r} does not provide the DeviceFamily parts (docs/families.md)")
        found.setdefault(family.name, family)
    return found


def installed() -> dict[str, DeviceFamily]:
    """Every installed family by name (entry points, then ``LABCTL_FAMILIES``)."""
    return _families(os.environ.get(ENV_VARIABLE, ""))


def named(name: str) -> DeviceFamily:
    families = installed()
    try:
        return families[name]
    except KeyError:
        raise ConfigError(f"no device family {name!r} is installed (have: {', '.join(sorted(families))})") from None


def for_part(part: str) -> DeviceFamily:
    """The family that makes ``part`` (e.g. CMNA-777)."""
    for family in installed().values():
        if part in family.parts:
            return family
    known = ", ".join(p for f in installed().values() for p in f.parts)
    raise ConfigError(f"no installed device family makes part {part!r} (known parts: {known})")


def for_identity(identify_payload: bytes, where: str) -> DeviceFamily:
    """The family that recognises an IDENTIFY answer."""
    for family in installed().values():
        if family.recognises(identify_payload):
            return family
    raise ConfigError(f"{where}: no installed device family recognises the device's IDENTIFY answer "
                      f"(installed: {', '.join(sorted(installed()))}); name it with family = \"...\" in the bench file")


def for_file_attrs(attrs, where: str) -> DeviceFamily:
    """The family whose file this is (its ``family`` attribute; files written before the seam are CMNA's)."""
    name = attrs.get("family")
    if name is not None:
        return named(name.decode() if isinstance(name, bytes) else str(name))
    for family in installed().values():
        if family.owns_file(attrs):
            return family
    raise ConfigError(f"{where} was written for no installed device family")


def simulated_parts() -> tuple[str, ...]:
    """Every part an installed family can simulate (``--part`` choices, the GUI's embedded devices)."""
    return tuple(part for family in installed().values() if family.simulator for part in family.parts)


def demo_parts() -> tuple[str, ...]:
    """Simulated parts with a shipped recipe: what ``labctl demo`` and the GUI's one-click flow can run."""
    return tuple(part for family in installed().values() if family.simulator
                 for part in family.parts if part in family.shipped_recipes)


def simulator_of(family: DeviceFamily):
    """The family's simulator module, imported only now: by the commands that start a simulated bench."""
    if not family.simulator:
        raise ConfigError(f"device family {family.name} has no simulator")
    return importlib.import_module(family.simulator)


def for_bench(config: BenchReference) -> DeviceFamily:
    """The family that serves a bench: the bench file's ``family``, else the one that recognises IDENTIFY.

    Asking IDENTIFY opens the bridge port for one harmless exchange and
    powers nothing (bridge protocol v1 is common to every family's bridge).
    """
    from labctl.drivers.bridge import BridgeLink
    from labctl.drivers.bridge_protocol import CommonOp
    from labctl.errors import LabctlError

    if config.family is not None:
        return named(config.family)
    where = f"bench file {config.path}" if config.path else "bench file"
    try:
        with BridgeLink(config.bridge_port, timeout_s=config.bridge_timeout_s) as link:
            payload = link.request(CommonOp.IDENTIFY, b"")
    except LabctlError as exc:
        raise type(exc)(f"{where}: bridge.port: {exc}") from None
    return for_identity(payload, where)


def of_file(path, what: str) -> DeviceFamily:
    """The family an HDF5 file (characterisation, weights, design) was written for."""
    import h5py

    from labctl.errors import DataFileError

    try:
        with h5py.File(path, "r", locking=False) as f:
            attrs = dict(f.attrs)
    except FileNotFoundError:
        raise DataFileError(f"{path}: no such file ({what})") from None
    except OSError as exc:
        raise DataFileError(f"{path}: not a readable HDF5 file ({' '.join(str(exc).split())})") from None
    return for_file_attrs(attrs, f"{what} {path}")
