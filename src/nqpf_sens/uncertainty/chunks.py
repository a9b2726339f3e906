"""The work folder of a run: one file of plain arrays per finished chunk, from which ``--resume``
continues.

A chunk file is an ``.npz`` read without pickle: the zip format's CRC-32 of each array finds a
damaged or truncated chunk, and a stored digest of the run's fingerprint, the chunk's rows and
every array's name, CRC-32 and size a foreign one, or arrays put beside another chunk's digest;
arrays not of the shapes and types their span must have are refused too; each is computed
again. (A SHA-256 over every byte, as before, cost a sixth of a weights-only study's time and
guarded against nothing more: the fingerprint is no secret.) The folder holds nothing else than
those files and the fingerprint, and only those are ever deleted.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import zipfile
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from nqpf_sens.errors import UserError
from nqpf_sens.outputs import make_folders

KEY_MEMBER = "key.npy"
NPY_HEADER = 10 + 2**16  # the largest header of an .npy file of format 1.0, which numpy writes
ZIP_OVERHEAD = 2**12  # bytes of zip headers per member, beyond its name's (generous)
#: each array of a chunk file: its shape and type, "unsigned" for any unsigned integer type whose
#: values fit an int64 (counts are written in the smallest that holds them)
Layout = dict[str, tuple[tuple[int, ...], str]]


def _key_digest(key: str, members: list[zipfile.ZipInfo]) -> bytes:
    """The ``.npy`` bytes of a digest of ``key`` and of each array member's name, CRC-32 and
    size, as the zip directory states them: it binds the arrays to the key without reading
    them."""
    digest = hashlib.sha256(key.encode())
    for member in sorted(members, key=lambda m: m.filename):
        if member.filename != KEY_MEMBER:
            digest.update(f"|{member.filename}:{member.CRC}:{member.file_size}".encode())
    stored = io.BytesIO()
    np.lib.format.write_array(stored, np.frombuffer(digest.digest(), dtype=np.uint8))
    return stored.getvalue()


def save_arrays(path: Path, arrays: dict[str, np.ndarray], key: str) -> None:
    """Write plain arrays and their digest under ``key``, atomically: a resumed run never reads
    half a chunk. The file is created new (never written through a link left at its name); a
    write that fails (a full disk, the file-size limit) removes it and names it."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.unlink(missing_ok=True)  # a save cut short; a link itself, not what it points to
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    descriptor = os.open(temporary, flags, 0o644)  # ours from here: O_EXCL made it
    try:
        with os.fdopen(descriptor, "w+b") as handle:
            members: dict[str, Any] = arrays  # numpy's stubs take any keyword for its options
            np.savez(handle, **members)  # members stored, not compressed
            with zipfile.ZipFile(handle, "a") as archive:
                archive.writestr(KEY_MEMBER, _key_digest(key, archive.infolist()))
    except OSError as error:
        temporary.unlink(missing_ok=True)
        error.filename = error.filename or str(path)  # a write names no file
        raise
    os.replace(temporary, path)


def load_arrays(path: Path, layout: Layout, key: str) -> dict[str, np.ndarray] | None:
    """The arrays of ``layout`` saved at ``path`` under ``key``, or None if the file is damaged (a
    CRC-32 that does not match), truncated, foreign, holds other members or arrays not of their
    layout (read as data only: no pickle). Nothing larger than its layout allows is read: the
    file is a regular one of at most the layout's size (opened without waiting or following a
    link), its members stored uncompressed (as written) and each of at most its array's size,
    and the digest is checked before any array. Then every member is read to its end: numpy
    reads only the bytes an array's header announces, so a header damaged into a smaller shape
    would pass unchecked."""
    limits = {f"{name}.npy": _largest(*layout[name]) for name in layout}
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)
    try:
        with os.fdopen(os.open(path, flags), "rb") as handle:
            status = os.fstat(handle.fileno())
            largest_file = sum(limits.values()) + ZIP_OVERHEAD * (len(limits) + 1)
            if not stat.S_ISREG(status.st_mode) or status.st_size > largest_file:
                return None
            with np.load(handle, allow_pickle=False) as archive:
                members = archive.zip.infolist()
                sizes = {member.filename: member.file_size for member in members}
                expected = _key_digest(key, members)
                if (
                    len(sizes) != len(members)  # a name twice
                    or sizes.keys() != {*limits, KEY_MEMBER}
                    or any(
                        m.compress_type != zipfile.ZIP_STORED or m.compress_size != m.file_size
                        for m in members
                    )
                    or any(sizes[name] > limit for name, limit in limits.items())
                    or sizes[KEY_MEMBER] != len(expected)
                    or archive.zip.read(KEY_MEMBER) != expected
                    or archive.zip.testzip() is not None
                ):
                    return None
                arrays = {name: archive[name] for name in layout}
    except Exception:  # a damaged zip or header can raise almost anything: compute it again
        return None
    fits = all(_fits(arrays[name], *layout[name]) for name in layout)
    return arrays if fits else None


def _largest(shape: tuple[int, ...], dtype: str) -> int:
    """The most bytes an ``.npy`` member of this shape and type can hold."""
    itemsize = 8 if dtype == "unsigned" else np.dtype(dtype).itemsize
    return NPY_HEADER + int(np.prod(shape)) * itemsize


def _fits(array: object, shape: tuple[int, ...], dtype: str) -> bool:
    """Whether ``array`` is an array of ``shape`` and ``dtype`` (see :data:`Layout`)."""
    if not isinstance(array, np.ndarray) or array.shape != shape:
        return False
    if dtype != "unsigned":
        return array.dtype == np.dtype(dtype)
    return array.dtype.kind == "u" and int(array.max(initial=0)) <= np.iinfo(np.int64).max


def chunk_path(work: Path, start: int) -> Path:
    return work / f"chunk_{start:012d}.npz"


def chunk_key(token: str, start: int, stop: int) -> str:
    """What a chunk file is keyed by: a chunk of another run or span never passes."""
    return f"{token}:{start}:{stop}"


def fingerprint(raw_config: dict, inputs: dict[Path, str]) -> str:
    """A hash of what determines the results: the config (not its workers, backend or name), the
    digests of the input files (:func:`input_digests`) and the code (:func:`code_digest`)."""
    relevant = {k: v for k, v in raw_config.items() if k != "run"}
    relevant["run"] = {k: v for k, v in raw_config.get("run", {}).items() if k in ("seed", "kind")}
    text = json.dumps(
        {"config": relevant, "inputs": list(inputs.values()), "code": code_digest()},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def input_digests(inputs: list[Path]) -> dict[Path, str]:
    """The SHA-256 of each input file's bytes."""
    return {path: hashlib.sha256(path.read_bytes()).hexdigest() for path in inputs}


#: the libraries whose versions can change a run's numbers
DEPENDENCIES = ("numpy", "pandas", "scipy", "numba", "SALib")
PACKAGE = Path(__file__).resolve().parents[1]  # the nqpf_sens modules


def code_digest(package: Path = PACKAGE) -> str:
    """A hash of the code that computes: every module of the ``package`` and the versions of
    :data:`DEPENDENCIES` (the package's version number alone does not change with its code).
    Computed each time (9 ms): a notebook may reload edited modules. Links (an editor's lock
    file named like a module, say) are not modules."""
    digest = hashlib.sha256()
    modules = (p for p in package.rglob("*.py") if p.is_file() and not p.is_symlink())
    for path in sorted(modules):
        digest.update(f"{path.relative_to(package).as_posix()}:".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    for name in DEPENDENCIES:
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            version = "-"
        digest.update(f"|{name}={version}".encode())
    return digest.hexdigest()


WORK_STAMP = "fingerprint.txt"


def _is_work_file(name: str) -> bool:
    return name == WORK_STAMP or (name.startswith("chunk_") and name.endswith((".npz", ".tmp")))


def check_work_folder(work: Path) -> None:
    """Refuse a work folder that nqpf_sens did not create (it is emptied by a new run)."""
    if os.path.islink(work):
        raise UserError("is a symbolic link; nqpf_sens never writes through one", work)
    if not os.path.lexists(work):
        return
    if not work.is_dir():
        raise UserError("exists and is not a folder; move it away", work)
    foreign = [
        e.name
        for e in os.scandir(work)
        if not (_is_work_file(e.name) and e.is_file(follow_symlinks=False))
    ]
    if foreign or not (work / WORK_STAMP).is_file():
        what = f"holds '{foreign[0]}'" if foreign else "has no fingerprint file"
        raise UserError(f"{what}: not an nqpf_sens work folder; move it away", work)


def remove_work(work: Path) -> None:
    """Delete a work folder: only the files nqpf_sens writes there, then the folder if empty."""
    if os.path.islink(work) or not work.is_dir():
        return
    for entry in os.scandir(work):
        if _is_work_file(entry.name) and entry.is_file(follow_symlinks=False):
            os.unlink(entry.path)
    try:
        os.rmdir(work)
    except OSError:
        pass


def _stamped(stamp: Path, size: int) -> str:
    """The fingerprint a work folder was stamped with (no more than ``size`` + 1 characters of
    its file are read: a longer one is not the token)."""
    with open(stamp, "rb") as handle:
        return handle.read(size + 1).decode("utf-8", errors="replace")


def prepare_work(work: Path, token: str, resume: bool) -> tuple[set[int], str | None]:
    """Create (or, when resuming a run of the same fingerprint, reuse) the work folder; returns the
    chunk starts found and a one-line note for the user when a resume cannot continue."""
    check_work_folder(work)
    stamp = work / WORK_STAMP
    note = None
    if resume:
        if not stamp.is_file():
            note = "nothing to resume (no finished chunks were found); starting from the beginning"
        elif _stamped(stamp, len(token)) != token:
            note = (
                "the config, the data or the package changed since the interrupted run; "
                "starting over"
            )
        else:
            starts = {
                int(p.stem[6:])
                for p in work.glob("chunk_*.npz")
                if p.stem[6:].isascii() and p.stem[6:].isdigit()  # int() refuses some digits
            }
            return starts, None
    remove_work(work)
    make_folders(work)
    stamp.write_text(token, encoding="utf-8")
    return set(), note
