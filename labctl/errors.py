"""Exceptions a lab engineer sees.

Every error that can reach the command line or the GUI derives from
:class:`LabctlError`; its message is one line that names the problem, and the
CLI/GUI edge prints it instead of a traceback.
"""


class LabctlError(Exception):
    """Base class: a problem the user can act on (bad input, bench trouble)."""


class ConfigError(LabctlError):
    """A bench file, recipe or command-line value is malformed or inconsistent."""


class SafetyError(LabctlError):
    """A request would leave the recommended ratings of the die (contract section 1)."""


class InstrumentError(LabctlError):
    """An SMU refused a command, reported an error, or cannot be reached."""


class DataFileError(LabctlError):
    """An HDF5 file is missing, corrupt, or belongs to another die."""


class WorkerLostError(LabctlError):
    """A training worker process ended before finishing its run (killed from outside, out of memory)."""
