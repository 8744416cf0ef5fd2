"""One client per bench: an OS lock on the bridge port and on every instrument, for any device family.

Two programs driving one bench fight over it: the second takes the bridge
over, the first writes garbage. labctl therefore holds, for the whole run, an
exclusive ``flock`` on one lock file per thing it talks to (the bridge port
and each instrument's VISA resource). The kernel drops the lock when the
process ends, however it ends (SIGKILL and power cuts of the host included),
so a crashed run never blocks the next one: there is nothing to clean up.

- Keys are normalised (:func:`bridge_key`, :func:`instrument_key`), so
  ``socket://LOCALHOST:5000/`` and ``socket://localhost:5000`` or
  ``TCPIP::host::5025::SOCKET`` and ``TCPIP0::host::5025::SOCKET`` are one key.
- Lock files live in ``$LABCTL_LOCK_DIR``, else ``$XDG_RUNTIME_DIR/labctl``,
  else ``<temp dir>/labctl-locks`` (:func:`lock_directory`); a file is named
  by a hash of its key plus a readable slug (:func:`lock_path`). Benches
  shared by several user accounts need one ``LABCTL_LOCK_DIR`` that all can
  write: ``XDG_RUNTIME_DIR`` is private to each user.
- The holder writes its command line, PID, host and start time into the file,
  so a refused client names it (:class:`BenchInUseError`, one line). The
  refusal comes at once (the lock is tried, never waited for) and before
  anything on the bench is opened.
- Within one process the lock is re-entrant: the command line may hold a
  bench for a whole multi-step run while each step's bench object takes the
  same keys again (a reference count; released when the last holder lets go).

Only POSIX ``fcntl.flock`` is tested; on Windows ``msvcrt.locking`` (also
released by the kernel when the process dies) takes its place.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shlex
import socket
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from labctl.errors import ConfigError, LabctlError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]
    import msvcrt

ENV_LOCK_DIR = "LABCTL_LOCK_DIR"
_WINDOWS_LOCK_OFFSET = 1 << 30
"""Windows: the byte locked (far beyond the holder text, which must stay readable)."""
_BUSY_ERRNOS = {errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK, getattr(errno, "EDEADLOCK", errno.EDEADLK)}
_HOLDER_WAIT_S = 0.5
"""A refused client waits at most this long for a holder that has just locked to write its name."""


@dataclass(frozen=True)
class LockKey:
    """One thing on a bench that only one client may use."""

    kind: str
    """What it is, for messages: "bridge" or "instrument"."""
    address: str
    """As the bench file spells it."""
    key: str
    """Normalised: equal for every spelling of the same port or resource."""

    @property
    def label(self) -> str:
        return f"{self.kind} {self.address}"


@dataclass(frozen=True)
class Holder:
    """Who holds a lock, as the holder wrote it into the lock file."""

    pid: int
    command: str
    since: float
    """Epoch seconds when the lock was taken."""
    host: str = ""

    def describe(self) -> str:
        """``"labctl characterise ..." (PID 1234) since 17:02:03``."""
        started = time.localtime(self.since)
        fmt = "%H:%M:%S" if time.strftime("%Y-%m-%d", started) == time.strftime("%Y-%m-%d") else "%Y-%m-%d %H:%M:%S"
        where = f" on {self.host}" if self.host and self.host != socket.gethostname() else ""
        return f'"{self.command}" (PID {self.pid}{where}) since {time.strftime(fmt, started)}'

    def as_json(self) -> str:
        return json.dumps({"pid": self.pid, "command": self.command, "since": self.since, "host": self.host})


class BenchInUseError(LabctlError):
    """Another client holds part of this bench; nothing was opened or touched."""

    def __init__(self, key: LockKey, holder: Holder | None) -> None:
        self.key = key
        self.holder = holder
        who = holder.describe() if holder is not None else "another process (it did not say which)"
        super().__init__(f"bench in use: {key.label} is held by {who}; wait for it or stop it")


# -- keys ---------------------------------------------------------------------------


def normalise_port(port: str) -> str:
    """A bridge port as one key: URLs by scheme, host (lower case) and port; devices by their real path."""
    text = port.strip()
    match = re.fullmatch(r"(?i)([a-z][a-z0-9+.-]*)://([^/?#]*)[^?#]*(?:[?#].*)?", text)
    if match:
        scheme, netloc = match.group(1).lower(), match.group(2).lower()
        return f"{scheme}://{netloc}"
    if re.fullmatch(r"(?i)(\\\\\.\\)?com\d+", text):  # Windows: COM5, \\.\COM12
        return text.upper().removeprefix("\\\\.\\")
    return os.path.realpath(text)  # /dev/serial/by-id/... -> /dev/ttyACM0


def normalise_resource(resource: str) -> str:
    """A VISA resource as one key (``TCPIP::h::5025::SOCKET`` = ``tcpip0::H::5025::socket``)."""
    text = resource.strip()
    try:
        from pyvisa import rname

        text = str(rname.parse_resource_name(text))
    except Exception:  # noqa: BLE001 - an unusual name still gets a key: the text itself
        pass
    return text.upper()


def bridge_key(port: str) -> LockKey:
    return LockKey("bridge", port, normalise_port(port))


def instrument_key(resource: str) -> LockKey:
    return LockKey("instrument", resource, normalise_resource(resource))


def bench_keys(bridge_port: str | None, resources: Iterable[str]) -> list[LockKey]:
    """The bridge's key (a bench without a bridge has none), then one per distinct instrument resource."""
    keys = [bridge_key(bridge_port)] if bridge_port is not None else []
    for resource in resources:
        key = instrument_key(resource)
        if all(k.key != key.key for k in keys):
            keys.append(key)
    return keys


def keys_of(config) -> list[LockKey]:
    """The keys of a bench file (:class:`labctl.bench_file.BenchConfig` or a family's): its bridge port and
    instruments."""
    return bench_keys(config.bridge_port, [section.resource for section in config.instruments.values()])


# -- where the lock files are -----------------------------------------------------


def lock_directory() -> Path:
    """``$LABCTL_LOCK_DIR``, else ``$XDG_RUNTIME_DIR/labctl``, else ``<temp dir>/labctl-locks``; created."""
    explicit = os.environ.get(ENV_LOCK_DIR)
    if explicit:
        path, mode = Path(explicit), 0o1777
    elif os.environ.get("XDG_RUNTIME_DIR"):
        path, mode = Path(os.environ["XDG_RUNTIME_DIR"]) / "labctl", 0o700
    else:  # shared by every user of the host: world-writable with the sticky bit, as /var/lock
        path, mode = Path(tempfile.gettempdir()) / "labctl-locks", 0o1777
    try:
        path.mkdir(parents=True, exist_ok=False)
    except FileExistsError:
        pass
    except OSError as exc:
        raise ConfigError(f"cannot create the lock folder {path}: {exc.strerror or exc}; "
                          f"set {ENV_LOCK_DIR} to a writable folder") from None
    else:
        try:
            os.chmod(path, mode)
        except OSError:
            pass
    return path


def lock_path(key: LockKey | str, directory: Path | None = None) -> Path:
    """The lock file of ``key``: a hash of the normalised key plus a readable slug."""
    text = key.key if isinstance(key, LockKey) else key
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    slug = re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")[:60]
    return (directory or lock_directory()) / f"{digest}-{slug}.lock"


def command_line(argv: list[str] | None = None) -> str:
    """This process's command as a user typed it: ``labctl characterise --bench b.toml``."""
    args = list(sys.argv if argv is None else argv) or ["python"]
    program = os.path.basename(args[0]) or "python"
    if program == "__main__.py":  # python -m labctl: name the package
        program = os.path.basename(os.path.dirname(args[0])) or program
    return " ".join([program, *(shlex.quote(a) for a in args[1:])])


# -- the lock ---------------------------------------------------------------------------


@dataclass
class _Held:
    fd: int
    path: Path
    count: int


_HELD: dict[tuple[str, str], _Held] = {}
"""(lock directory, key) -> this process's open, locked file."""
_HELD_GUARD = threading.Lock()


def _try_lock(fd: int) -> bool:
    """Take the lock without waiting; False when another open file (another process) has it."""
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:  # pragma: no cover - Windows
            os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except BlockingIOError:
        return False
    except OSError as exc:
        if exc.errno in _BUSY_ERRNOS:
            return False
        raise
    return True


def _unlock(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
    else:  # pragma: no cover - Windows
        os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)


def _open(path: Path) -> tuple[int, bool]:
    """Open (creating) the lock file; (fd, writable).

    In a shared sticky folder a file another user created may refuse ``O_CREAT``
    (``fs.protected_regular``) or writing: then it is opened without creating, or
    read-only (``flock`` needs no write access; only the holder's name is lost).
    """
    cloexec = getattr(os, "O_CLOEXEC", 0)
    problem: OSError | None = None
    for flags, writable in ((os.O_RDWR | os.O_CREAT, True), (os.O_RDWR, True), (os.O_RDONLY, False)):
        try:
            fd = os.open(path, flags | cloexec, 0o666)
        except PermissionError as exc:
            problem = exc
            continue
        except OSError as exc:
            problem = exc
            break
        if flags & os.O_CREAT:
            try:
                os.fchmod(fd, 0o666)  # every user of a shared folder may lock it too
            except (OSError, AttributeError):
                pass
        return fd, writable
    assert problem is not None
    raise ConfigError(f"cannot open lock file {path}: {problem.strerror or problem}; "
                      f"set {ENV_LOCK_DIR} to a writable folder")


def read_holder(path: Path) -> Holder | None:
    """What the holder wrote into ``path`` (None: nothing, or not readable)."""
    try:
        data = json.loads(path.read_text())
        return Holder(int(data["pid"]), str(data["command"]), float(data["since"]), str(data.get("host", "")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def holder_of(key: LockKey, directory: Path | None = None) -> Holder | None:
    """Who holds ``key`` now; None when it is free. Takes nothing."""
    path = lock_path(key, directory)
    if not path.exists():
        return None
    fd, _ = _open(path)
    try:
        if _try_lock(fd):
            _unlock(fd)
            return None
    finally:
        os.close(fd)
    return read_holder(path) or Holder(0, "another process", time.time())


class BenchLock:
    """The locks of one bench: every key or none. ``with BenchLock(keys):`` or :meth:`acquire`/:meth:`release`.

    :meth:`acquire` raises :class:`BenchInUseError` naming the first key held
    by another process and its holder, having released whatever it took.
    """

    def __init__(self, keys: Iterable[LockKey], *, directory: Path | None = None, command: str | None = None) -> None:
        self.keys = sorted({k.key: k for k in keys}.values(), key=lambda k: (k.kind != "bridge", k.kind, k.key))
        """The bridge first, then the instruments: one order for every client, so two clients of one
        bench never each take a part of it (and a refusal names the bridge when that is held)."""
        self._directory = directory
        self.command = command
        self._taken: list[tuple[str, str]] = []

    @property
    def held(self) -> bool:
        return bool(self._taken)

    def acquire(self) -> "BenchLock":
        if self._taken:
            return self
        directory = self._directory or lock_directory()
        holder = Holder(os.getpid(), self.command or command_line(), time.time(), socket.gethostname())
        try:
            for key in self.keys:
                self._taken.append(_take(key, directory, holder))
        except BaseException:
            self.release()
            raise
        return self

    def release(self) -> None:
        """Let go of every key this object took (the kernel would do it at exit anyway)."""
        taken, self._taken = self._taken, []
        for slot in reversed(taken):
            _give_back(slot)

    def __enter__(self) -> "BenchLock":
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def __del__(self) -> None:  # a forgotten lock still goes when its object does
        try:
            self.release()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


def lock_bench(config, *, command: str | None = None) -> BenchLock:
    """Take the locks of a bench file's bridge and instruments (:func:`keys_of`); raise if another client has one."""
    return BenchLock(keys_of(config), command=command).acquire()


def _take(key: LockKey, directory: Path, holder: Holder) -> tuple[str, str]:
    path = _take_locked(key, directory, holder)
    if isinstance(path, Path):  # refused: name the holder (waiting outside the process-wide guard)
        raise BenchInUseError(key, _wait_for_holder(path))
    return path


def _take_locked(key: LockKey, directory: Path, holder: Holder) -> tuple[str, str] | Path:
    """The slot taken, or the lock file's path when another process holds it."""
    slot = (str(directory), key.key)
    with _HELD_GUARD:
        held = _HELD.get(slot)
        if held is not None:
            held.count += 1
            return slot
        path = lock_path(key, directory)
        for _ in range(5):  # the file may be replaced between open and lock (a folder cleaned meanwhile)
            fd, writable = _open(path)
            if not _try_lock(fd):
                os.close(fd)
                return path
            try:
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            _unlock(fd)
            os.close(fd)
        else:  # pragma: no cover - a folder emptied five times in a row
            raise ConfigError(f"lock file {path} keeps disappearing: is something cleaning {directory}?")
        if writable:
            try:
                os.ftruncate(fd, 0)
                os.pwrite(fd, (holder.as_json() + "\n").encode(), 0)
            except OSError:
                pass  # the lock holds without the name; a refused client then says "another process"
        _HELD[slot] = _Held(fd, path, 1)
        return slot


def _give_back(slot: tuple[str, str]) -> None:
    with _HELD_GUARD:
        held = _HELD.get(slot)
        if held is None:
            return
        held.count -= 1
        if held.count > 0:
            return
        del _HELD[slot]
        try:
            os.ftruncate(held.fd, 0)  # no stale name left behind (still locked: nobody reads half of it)
        except OSError:
            pass
        try:
            _unlock(held.fd)
        finally:
            os.close(held.fd)


def _wait_for_holder(path: Path) -> Holder | None:
    """The holder's name; a holder that has just locked may not have written it yet."""
    deadline = time.monotonic() + _HOLDER_WAIT_S
    while True:
        holder = read_holder(path)
        if holder is not None or time.monotonic() > deadline:
            return holder
        time.sleep(0.02)
