"""Crash-safe output files: partial files, atomic promotion, no silent overwrite, stale HDF5 write flags.

The convention (docs/architecture.md, "Output files"):

- A file a long run builds up (a characterisation's raw readings) is written
  as ``<stem>.partial<suffix>`` next to its final name (``die.h5`` ->
  ``die.partial.h5``) and becomes the final name only when it is complete;
  ``--resume`` continues the partial file.
- Every other file is written under a hidden temporary name in the same
  folder and moved over its final name with :func:`os.replace` once it is
  written and synced (:func:`atomic_output`, :func:`atomic_write_text`), so
  a reader sees the old file or the new one, never half of one.
- An existing output is replaced only when the user asks (``--force``):
  :func:`refuse_existing`.
- A process writing a partial file holds :class:`WriterLock` (a hidden
  ``.<partial>.lock`` next to it, flock'ed) for as long as it writes; so
  labctl can tell a partial file whose writer was killed from one still
  being written, and only then clears the "open for write" flags HDF5 left
  in the file (:func:`clear_stale_write_flag`, what ``h5clear -s`` does).
"""

from __future__ import annotations

import os
import shutil
import struct
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from labctl.errors import ConfigError, DataFileError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]
    import msvcrt

PARTIAL = ".partial"
"""Inserted before the suffix of a file that is still being written: ``die.h5`` -> ``die.partial.h5``."""


def partial_path(out: str | Path) -> Path:
    """Where ``out`` is written until it is complete: ``die.h5`` -> ``die.partial.h5``."""
    out = Path(out)
    return out.with_name(f"{out.stem}{PARTIAL}{out.suffix}")


def is_partial(path: str | Path) -> bool:
    """Whether ``path`` follows the partial-file convention (a file labctl is, or was, writing)."""
    return Path(path).stem.endswith(PARTIAL)


def open_hdf5(path: str | Path, what: str):
    """``path`` opened read-only as HDF5; a missing or unreadable file is one DataFileError naming it and ``what``
    it should have been (e.g. "a printed design from `labctl train`")."""
    import h5py

    p = Path(path)
    if not p.exists():
        raise DataFileError(f"{p}: no such file ({what})")
    try:
        return h5py.File(p, "r")
    except OSError as exc:
        raise DataFileError(f"{p}: not a readable HDF5 file ({' '.join(str(exc).split())})") from None


def refuse_existing(path: str | Path, *, force: bool, what: str | None = None,
                    instead: str = "another --out") -> None:
    """ConfigError (one line) when ``path`` exists and ``force`` is not given; ``what`` says what it holds."""
    path = Path(path)
    if path.exists() and not force:
        held = f" ({what})" if what else ""
        raise ConfigError(f"{path} exists{held}; use --force to replace it, or {instead}")


# -- atomic writes --------------------------------------------------------------------


def _temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def _fsync_dir(folder: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def promote(source: str | Path, dest: str | Path) -> Path:
    """Move the finished (closed) ``source`` over ``dest`` in one step, after syncing it to disk."""
    source, dest = Path(source), Path(dest)
    _fsync_file(source)
    os.replace(source, dest)
    _fsync_dir(dest.parent)
    return dest


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """``with atomic_output("w.h5") as tmp:`` write ``tmp`` (closed by the end of the block); it then
    replaces ``path`` in one step. On an error ``tmp`` is removed and ``path`` is left as it was."""
    path = Path(path)
    tmp = _temp_path(path)
    try:
        yield tmp
        promote(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    path = Path(path)
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)
    return path


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_copy(source: str | Path, dest: str | Path) -> Path:
    with atomic_output(dest) as tmp:
        shutil.copyfile(source, tmp)
    return Path(dest)


# -- who is writing a partial file ----------------------------------------------------


def _lock_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.lock")


_HELD: set[Path] = set()
"""Files this process holds the :class:`WriterLock` of."""


def _try_lock(fh) -> bool:
    try:
        if fcntl is not None:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            fh.seek(0)
            msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
        return True
    except OSError:
        return False


def _unlock(fh) -> None:
    try:
        if fcntl is not None:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        else:
            fh.seek(0)
            msvcrt.locking(fh.fileno(), msvcrt.LK_UNLCK, 1)
    except OSError:
        pass


def _recorded_pid(lock: Path) -> str:
    try:
        return lock.read_text().strip() or "?"
    except OSError:
        return "?"


class WriterLock:
    """Held while a process writes ``path``: ``with WriterLock(partial):`` (DataFileError if another holds it).

    The lock is an flock on a hidden file next to ``path``, so the kernel drops
    it when the writer dies, however it dies; HDF5's own file locks are not
    used for this, since an SWMR writer releases them (readers must get in).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = _lock_path(self.path)
        self._fh = None

    def acquire(self) -> "WriterLock":
        fh = open(self._lock, "a+")
        if not _try_lock(fh):
            fh.close()
            raise DataFileError(f"{self.path} is being written by another process (pid {_recorded_pid(self._lock)}); "
                                "wait for it to finish or stop it first")
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._fh = fh
        _HELD.add(self.path.resolve())
        return self

    @property
    def held(self) -> bool:
        return self._fh is not None

    def release(self) -> None:
        if self._fh is None:
            return
        _HELD.discard(self.path.resolve())
        try:
            self._lock.unlink(missing_ok=True)
        except OSError:
            pass
        _unlock(self._fh)
        self._fh.close()
        self._fh = None

    def __enter__(self) -> "WriterLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def being_written(path: str | Path) -> bool:
    """Whether a live process (this one included) holds the :class:`WriterLock` of ``path``."""
    if Path(path).resolve() in _HELD:
        return True
    lock = _lock_path(Path(path))
    if not lock.exists():
        return False
    try:
        fh = open(lock, "r")
    except OSError:
        return False
    with fh:
        if _try_lock(fh):
            _unlock(fh)
            return False
        return True


# -- HDF5's file consistency flags ------------------------------------------------------

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
STALE_FLAG_TEXT = "already open for write"
"""What HDF5 says when a file's superblock still carries the write flags (h5py raises OSError)."""


def left_open_for_write(exc: BaseException) -> bool:
    """Whether an error opening an HDF5 file is the stale "file is already open for write" flag."""
    return STALE_FLAG_TEXT in str(exc)


def _rot(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & 0xFFFFFFFF


def lookup3(data: bytes, initval: int = 0) -> int:
    """Bob Jenkins' lookup3 ``hashlittle``: the checksum of HDF5 metadata (``H5_checksum_lookup3``)."""
    m = 0xFFFFFFFF
    n = len(data)
    a = b = c = (0xDEADBEEF + n + initval) & m
    i = 0
    while n - i > 12:
        x, y, z = struct.unpack_from("<3I", data, i)
        a, b, c = (a + x) & m, (b + y) & m, (c + z) & m
        a = (a - c) & m; a ^= _rot(c, 4); c = (c + b) & m    # noqa: E702 (the reference's mix())
        b = (b - a) & m; b ^= _rot(a, 6); a = (a + c) & m    # noqa: E702
        c = (c - b) & m; c ^= _rot(b, 8); b = (b + a) & m    # noqa: E702
        a = (a - c) & m; a ^= _rot(c, 16); c = (c + b) & m   # noqa: E702
        b = (b - a) & m; b ^= _rot(a, 19); a = (a + c) & m   # noqa: E702
        c = (c - b) & m; c ^= _rot(b, 4); b = (b + a) & m    # noqa: E702
        i += 12
    if n == i:
        return c
    x, y, z = struct.unpack("<3I", data[i:].ljust(12, b"\0"))
    a, b, c = (a + x) & m, (b + y) & m, (c + z) & m
    c ^= b; c = (c - _rot(b, 14)) & m   # noqa: E702 (the reference's final())
    a ^= c; a = (a - _rot(c, 11)) & m   # noqa: E702
    b ^= a; b = (b - _rot(a, 25)) & m   # noqa: E702
    c ^= b; c = (c - _rot(b, 16)) & m   # noqa: E702
    a ^= c; a = (a - _rot(c, 4)) & m    # noqa: E702
    b ^= a; b = (b - _rot(a, 14)) & m   # noqa: E702
    c ^= b; c = (c - _rot(b, 24)) & m   # noqa: E702
    return c


def _superblock_offset(fh, size: int) -> int:
    """The superblock is at 0, 512, 1024, 2048, ... (after a user block)."""
    offset = 0
    while offset + len(HDF5_SIGNATURE) <= size:
        fh.seek(offset)
        if fh.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE:
            return offset
        offset = 512 if offset == 0 else offset * 2
    raise DataFileError(f"{fh.name}: not an HDF5 file (no superblock signature)")


def clear_stale_write_flag(path: str | Path, lock: WriterLock | None = None) -> bool:
    """Clear the "open for write" flags a killed writer left in labctl's own partial HDF5 file.

    What ``h5clear -s --increment=0`` does: in a version 2/3 superblock (the
    ones ``libver="latest"``/SWMR files have) zero the file consistency flags
    (byte 11) and raise the stored end-of-file address to the file's size
    (an SWMR writer's superblock keeps the size it had when SWMR started; the
    file grew since, and space below its real end must not be handed out
    again), then rewrite the lookup3 checksum. Only for a file named by the
    partial convention that no live process is writing (``lock``: the
    caller holds the file's :class:`WriterLock` and has not opened it yet);
    the superblock's checksum is verified first. Returns whether anything
    was changed.
    """
    path = Path(path)
    if not is_partial(path):
        raise DataFileError(f"{path}: not a labctl partial file; labctl clears the write flag only of its own "
                            f"(for another file, `h5clear -s {path}` does it)")
    if lock is not None:
        if not (lock.held and lock.path.resolve() == path.resolve()):
            raise ValueError(f"the lock given is not held for {path}")
    elif being_written(path):
        raise DataFileError(f"{path} is being written by another process (pid {_recorded_pid(_lock_path(path))})")
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        base = _superblock_offset(fh, size)
        fh.seek(base)
        head = fh.read(12)
        version, o_size = head[8], head[9]
        if version not in (2, 3) or o_size not in (2, 4, 8):
            raise DataFileError(f"{path}: superblock version {version} (offset size {o_size}) is not one labctl "
                                "writes; not touched")
        length = 12 + 4 * o_size
        fh.seek(base)
        block = bytearray(fh.read(length + 4))
        if len(block) < length + 4 or lookup3(bytes(block[:length])) != struct.unpack_from("<I", block, length)[0]:
            raise DataFileError(f"{path}: its superblock fails its checksum; not touched")
        fmt = {2: "<H", 4: "<I", 8: "<Q"}[o_size]
        base_address = struct.unpack_from(fmt, block, 12)[0]
        eoa_at = 12 + 2 * o_size
        eoa = struct.unpack_from(fmt, block, eoa_at)[0]
        if block[11] == 0:
            return False
        real_end = size - base_address
        block[11] = 0
        struct.pack_into(fmt, block, eoa_at, max(eoa, real_end))
        struct.pack_into("<I", block, length, lookup3(bytes(block[:length])))
        fh.seek(base)
        fh.write(block)
        fh.flush()
        os.fsync(fh.fileno())
    return True
