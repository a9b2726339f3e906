"""Writing results without ever harming a folder the tool did not create.

A run (or ``report``) writes into a hidden staging folder beside the destination and publishes it
only when complete. A destination that already exists is replaced only if it is an earlier result:
it holds the marker file this module writes, which lists every file of the result with the SHA-256
of its bytes, and nothing else, each file as written (a file edited since, or a result whose marker
records no digests, is refused: the tool cannot tell it from the user's own work). The root, the
home folder, the working folder and any folder that contains the config, the data or the installed
package are always refused; symbolic links are never followed or deleted (those above the
destination are resolved as the system resolves them, but no folder is created through one).
Publishing swaps the two folders atomically (``renameat2``; elsewhere: rename aside, move in), so a
crash at any instant leaves the old or the new result, and deleting the old one removes only the
files its marker lists. A lock file beside the destination keeps two runs from writing it at once; a
file of its name that the tool did not make is left alone and the run refused. What a killed run
leaves beside the destination (its staging folder, or an earlier result moved aside) is named in a
warning by the next run on that destination, never deleted: a copy of such a folder, or one the user
filled, could not be told from it.
Folders are created with the user's umask.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import stat
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from nqpf_sens.errors import UserError, quoted

MARKER = ".nqpf_sens-result.json"
MAX_MARKER_BYTES = 16 * 2**20  # a marker lists file names: larger is none of this tool's
TOOL = "nqpf_sens"
_RENAME_NOREPLACE, _RENAME_EXCHANGE = 1, 2
_AT_FDCWD = -100


def check_run_name(name: object, source: Path) -> str:
    """A run name is a plain folder name under ``results/``: no separator, not empty, not hidden."""
    if not isinstance(name, str):
        raise UserError(f"expected a string, got {quoted(name)}", source, "[run] name")
    bad = (
        not name.strip()
        or name.startswith(".")
        or "/" in name
        or "\\" in name
        or any(ord(c) < 32 for c in name)
    )
    if bad:
        raise UserError(
            f"{quoted(name)} is not a plain folder name "
            "(no '/', '\\', leading '.', or control characters)",
            source,
            "[run] name",
        )
    return name


def _absolute(path: Path) -> Path:
    """The absolute path with the parents' links resolved but the last component kept as it is
    (a loop of links, a name too long for the system, or a link to nothing on the way, which
    resolving would follow to wherever it points, refused in one line)."""
    if "\0" in str(path):  # from Python only: no command line can pass one
        raise UserError("holds a NUL character, which no path can", path)
    path = Path(os.path.abspath(path))
    _refuse_link_to_nowhere(path)
    try:
        if path.name in ("", ".."):
            return path.resolve()
        return path.parent.resolve() / path.name
    except (OSError, RuntimeError) as exc:
        raise UserError(
            f"cannot be resolved ({getattr(exc, 'strerror', None) or exc})", path
        ) from None


def _contains(folder: Path, path: Path) -> bool:
    return path == folder or folder in path.parents


def protected_paths(extra: Iterable[Path] = ()) -> dict[Path, str]:
    """Files and folders that an output folder must never contain (and how to name them): the
    working folder, the installed package and whatever the run reads."""
    protected = {Path.cwd().resolve(): "the working folder"}
    protected[Path(__file__).resolve().parent] = "the installed nqpf_sens package"
    for path in extra:
        protected.setdefault(Path(path).resolve(), f"'{Path(path).resolve()}'")
    return protected


def check_destination(
    destination: Path,
    protected: Iterable[Path] = (),
    given_as: str = "--out",
    carried: Iterable[str] = (),
) -> Path:
    """Refuse, before anything runs, a destination that may not be written or replaced
    (``given_as``: the option that named it, if any, for the advice; ``carried``: files of an
    earlier result there that the new one copies as they are, see :func:`check_replaceable`).

    Returns its absolute path. Nothing is created here."""
    final = _absolute(destination)
    if os.path.islink(final):
        advice = f" as {given_as}" if given_as else ""
        raise UserError(f"is a symbolic link; give the real folder{advice}", destination)
    home = Path.home().resolve()
    if final == Path(final.anchor) or final == home:
        raise UserError("refusing to write the root or the home folder; choose a new folder", final)
    for path, what in protected_paths(protected).items():
        if _contains(final, path):
            raise UserError(
                f"would replace a folder that contains {what}; choose a new folder", final
            )
    if os.path.lexists(final):
        check_replaceable(final, carried)
    ancestor = final.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK):
        raise UserError("cannot write the output folder here (not a writable folder)", ancestor)
    longest = _beside(final, STAGING).name  # the longest name a run gives a folder beside it
    limit = _longest_name(ancestor)
    if len(os.fsencode(longest)) > limit:
        raise UserError(
            f"the name is too long: the run's staging folder beside it ({longest[:24]}...) would "
            f"pass the system's limit of {limit} bytes for a name; choose a shorter one",
            final,
        )
    return final


def _longest_name(folder: Path) -> int:
    """The longest file name (bytes) the system allows in ``folder`` (255 if it does not say)."""
    try:
        limit = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):  # no pathconf (Windows), or no answer
        return 255
    return limit if limit > 0 else 255  # -1: no fixed limit


def result_files(folder: Path) -> list[str] | None:
    """The files an earlier result lists in its marker, or None if ``folder`` has no valid one."""
    content = _marker(folder)
    return None if content is None else content["files"]


def result_digests(folder: Path) -> dict[str, str] | None:
    """The SHA-256 of each file as the earlier result wrote it, or None if its marker has none
    (an older version's) or ``folder`` no valid marker."""
    return _recorded_digests(_marker(folder))


def _recorded_digests(content: dict[str, Any] | None) -> dict[str, str] | None:
    """A marker's digests, one for each file it lists, or None."""
    if content is None:
        return None
    digests = content.get("sha256")
    if not isinstance(digests, dict) or set(digests) != set(content["files"]):
        return None
    return digests if all(isinstance(d, str) for d in digests.values()) else None


def _marker(folder: Path) -> dict[str, Any] | None:
    """The content of ``folder``'s marker, its ``files`` checked, or None."""
    marker = folder / MARKER
    if os.path.islink(marker) or not marker.is_file():
        return None
    try:
        with open(marker, "rb") as handle:
            text = handle.read(MAX_MARKER_BYTES + 1)
        if len(text) > MAX_MARKER_BYTES:
            return None
        content = json.loads(text.decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    if not isinstance(content, dict) or content.get("tool") != TOOL:
        return None
    files = content.get("files")
    if not isinstance(files, list):
        return None
    if not all(isinstance(f, str) and _is_relative(f) for f in files):
        return None
    return content


def file_digest(path: Path) -> str:
    """The SHA-256 of a file's bytes, opened without following a link."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    with os.fdopen(os.open(path, flags), "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _is_relative(name: str) -> bool:
    parts = Path(name).parts
    return bool(parts) and not Path(name).is_absolute() and ".." not in parts and "." not in parts


def check_replaceable(
    folder: Path, carried: Iterable[str] = (), copies: Path | None = None
) -> dict[str, str]:
    """Refuse to replace ``folder`` unless it is an earlier result holding only what it lists,
    each file as written, except those ``carried`` into the new result as they are (whose bytes
    live on there, whatever they held), each still as its copy under ``copies`` once made (an
    edit made after the copy would be lost). Returns the digest each listed file was found with
    (see :func:`remove_result`)."""
    if os.path.islink(folder):
        raise UserError("is a symbolic link; nqpf_sens never replaces one", folder)
    if not folder.is_dir():
        raise UserError("exists and is not a folder; choose another output folder", folder)
    content = _marker(folder)  # read once: the files listed, their digests
    if content is None:
        raise UserError(
            "exists and is not an nqpf_sens result (no marker file); choose another output folder",
            folder,
        )
    listed = content["files"]
    foreign = _foreign_entry(folder, set(listed) | {MARKER})
    if foreign is not None:
        raise UserError(
            f"holds '{foreign}', which nqpf_sens did not write; move it away or choose another"
            " output folder",
            folder,
        )
    digests = _recorded_digests(content)
    if digests is None:
        what = (
            "is a result of an older nqpf_sens, whose marker does not record what its files held"
            if "sha256" not in content
            else "has a damaged marker file (its digests do not match its list of files)"
        )
        raise UserError(
            f"{what}, so edits to its files cannot be told; move it away or choose another "
            "output folder",
            folder,
        )
    carried = set(carried)
    found = {}
    for name in listed:
        path = folder / name
        if not os.path.lexists(path) or (name in carried and copies is None):
            continue  # a carried file is checked against its copy, once made
        found[name] = file_digest(path)
        expected = file_digest(copies / name) if name in carried else digests[name]
        if found[name] != expected:
            when = "while the report was rebuilt" if name in carried else "since nqpf_sens wrote it"
            raise UserError(
                f"holds '{name}', changed {when}; move it away or choose another output folder",
                folder,
            )
    return found


def _foreign_entry(folder: Path, listed: set[str]) -> str | None:
    """The first entry of ``folder`` that is neither a listed regular file nor a folder leading
    to one (a device or a pipe at a listed name is foreign too: reading it for its digest could
    wait forever). A folder that cannot be listed is refused: what it holds cannot be known."""

    def unlistable(error: OSError) -> None:
        relative = Path(error.filename or folder).relative_to(folder)
        what = "" if relative == Path(".") else f"holds '{relative}', a folder that "
        raise UserError(
            f"{what}nqpf_sens cannot list ({error.strerror}), so what it holds cannot be known; "
            "move it away or choose another output folder",
            folder,
        )

    folders = {str(parent) for name in listed for parent in Path(name).parents} - {"."}
    for root, dirs, files in os.walk(folder, onerror=unlistable, followlinks=False):
        here = Path(root).relative_to(folder)
        for name in dirs:
            relative = str(here / name)
            if os.path.islink(Path(root) / name) or relative not in folders:
                return relative
        for name in files:
            relative = str(here / name)
            if relative not in listed or not stat.S_ISREG(os.lstat(Path(root) / name).st_mode):
                return relative
    return None


def remove_result(folder: Path, found: Mapping[str, str]) -> list[str]:
    """Delete an earlier result: only the files its marker lists, each only if it still holds
    what :func:`check_replaceable` ``found`` (an edit made since is kept), then its folders once
    empty. Returns the files kept for that.

    Anything else (which :func:`check_replaceable` refused before) is left in place."""
    listed = result_files(folder) or []
    kept = []
    for name in [*listed, MARKER]:
        path = folder / name
        if not os.path.lexists(path) or path.is_dir():
            continue
        if name != MARKER and (
            not stat.S_ISREG(os.lstat(path).st_mode) or file_digest(path) != found.get(name)
        ):
            kept.append(name)
            continue
        os.unlink(path)
    folders = {parent for name in listed for parent in Path(name).parents if str(parent) != "."}
    for relative in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        _remove_empty(folder / relative)
    _remove_empty(folder)
    return kept


def _remove_empty(folder: Path) -> None:
    try:
        os.rmdir(folder)
    except OSError:
        pass


def _renameat2(source: Path, target: Path, flags: int) -> bool:
    """Linux's renameat2; False when the system or the file system does not offer it."""
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    result = function(_AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(target), flags)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(target))


def publish(staging: Path, final: Path, carried: Iterable[str] = ()) -> None:
    """Make the complete ``staging`` folder the result at ``final``, replacing an earlier result
    (``carried``: its files that ``staging`` holds copies of)."""
    if not os.path.lexists(final):
        if not _renameat2(staging, final, _RENAME_NOREPLACE):
            if os.path.lexists(final):
                raise UserError("appeared while the run was writing; nothing was replaced", final)
            os.rename(staging, final)
        return
    # again: files may have been added, or carried ones edited, while the run was going
    found = check_replaceable(final, carried, copies=staging)
    if _renameat2(staging, final, _RENAME_EXCHANGE):
        _remove_replaced(staging, found)  # the staging path now holds the old result
        return
    aside = _beside(final, ASIDE)
    os.rename(final, aside)
    try:
        os.rename(staging, final)
    except OSError:  # a folder made at ``final`` in between: say where the earlier result went
        raise UserError(
            f"appeared while the earlier result was moved aside to be replaced; nothing was "
            f"published, and the earlier result is in {aside}",
            final,
        ) from None
    _remove_replaced(aside, found)


def _remove_replaced(old: Path, found: Mapping[str, str]) -> None:
    """Delete the result a new one replaced; the new one is published already, so a file that
    cannot be deleted (a read-only folder, say), or that changed since it was checked, is said,
    not fatal: it stays, hidden, where it is."""
    try:
        kept = remove_result(old, found)
        reason = "some of it could not be read" if os.path.lexists(old) else None
        if kept:
            reason = f"'{kept[0]}' changed as it was being replaced, and is kept"
    except OSError as exc:
        reason = exc.strerror
    if reason:
        print(
            f"warning: the replaced result could not be deleted ({reason}); what is left of it "
            f"is in {old}",
            file=sys.stderr,
        )


def _refuse_link_to_nowhere(folder: Path) -> None:
    """Refuse a missing ``folder`` that is, or lies under, a symbolic link to nothing: creating
    it would create the folders the link names, wherever they are."""
    for path in [folder, *folder.parents]:
        try:
            os.stat(path)
            return
        except FileNotFoundError:
            pass
        except OSError:  # a loop of links, say: resolving refuses it
            return
        if os.path.islink(path):
            raise UserError(
                "is a symbolic link to a folder that does not exist; nqpf_sens creates no folder "
                "through a link",
                path,
            )


def make_folders(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents (umask honoured); returns those created, deepest
    first, so that a failed run can remove them again. If one cannot be made (a name too long,
    say), those made before it are removed at once."""
    _refuse_link_to_nowhere(folder)
    missing = []
    for path in [folder, *folder.parents]:
        if path.exists():
            break
        missing.append(path)
    made: list[Path] = []
    for path in reversed(missing):
        try:
            path.mkdir()
        except FileExistsError:  # made meanwhile by someone else: not ours to remove
            continue
        except OSError as exc:
            remove_empty_folders(reversed(made))
            raise UserError(f"cannot create the folder ({exc.strerror})", path) from None
        made.append(path)
    return made[::-1]


def remove_empty_folders(folders: Iterable[Path]) -> None:
    for folder in folders:
        _remove_empty(folder)


@contextmanager
def destination_lock(final: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``final`` (a lock file beside it) or refuse in one line. The
    lock file is one this tool made (it appears whole, holding :data:`LOCK_TEXT`): a file of
    that name that holds anything else is the user's, left alone, and the run refused."""
    lock = final.with_name(f".{final.name}.lock")
    while True:
        _place_lock(lock)
        try:  # read only: flock needs no more, and a umask may leave the file read only
            handle = os.open(lock, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:  # removed by the run that held it: place a new one
            continue
        except OSError as exc:
            if exc.errno != errno.ELOOP:  # ELOOP: a symbolic link has the lock's name
                raise UserError(f"cannot open the lock file ({exc.strerror})", lock) from None
            handle = None
        if handle is None or not _is_lock(handle):
            if handle is not None:
                os.close(handle)
            raise UserError(
                "something has the lock file's name that nqpf_sens cannot tell it made (a "
                "file, a folder or a link; an older version's lock is empty): if no run is "
                "writing this folder, remove it",
                lock,
            )
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(handle)
            raise UserError(
                "another nqpf_sens run is writing this folder; wait for it", final
            ) from None
        try:  # the file may have been removed by the previous holder: lock the current one
            same = os.stat(lock, follow_symlinks=False).st_ino == os.fstat(handle).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(handle)
    try:
        for left in abandoned(final):  # no other run writes beside it now: what is there, is left
            print(
                f"warning: {left} looks like what a killed run left (an unfinished or a replaced "
                "result); nqpf_sens does not delete it: remove it if you do not need it",
                file=sys.stderr,
            )
        yield
    finally:
        try:
            os.unlink(lock)  # ours: locked, and only a holder of the lock removes it
        finally:
            os.close(handle)


LOCK_TEXT = b"nqpf_sens: a run holds this file while it writes the folder beside it\n"


def _place_lock(lock: Path) -> None:
    """Create the lock file, whole, unless a file of its name exists: written under a new name,
    then linked into place (a link never replaces a file), so that no run sees it half-written."""
    temporary = lock.with_name(f"{lock.name}.{secrets.token_hex(4)}")
    try:
        handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666)
    except OSError as exc:
        raise UserError(f"cannot create the lock file ({exc.strerror})", lock) from None
    try:
        os.fchmod(handle, 0o644)  # readable whatever the umask: every run must open it
        os.write(handle, LOCK_TEXT)
        os.close(handle)
        os.link(temporary, lock, follow_symlinks=False)
    except FileExistsError:
        pass
    except OSError as exc:
        raise UserError(f"cannot create the lock file ({exc.strerror})", lock) from None
    finally:
        os.unlink(temporary)


def _is_lock(handle: int) -> bool:
    """Whether an open file is a lock file this tool made: a regular file holding LOCK_TEXT."""
    status = os.fstat(handle)
    if not stat.S_ISREG(status.st_mode) or status.st_size != len(LOCK_TEXT):
        return False
    return os.pread(handle, len(LOCK_TEXT) + 1, 0) == LOCK_TEXT


STAGING, ASIDE = "partial", "old"  # the hidden folders beside a destination: see _beside


def _beside(final: Path, kind: str) -> Path:
    """A new hidden folder name beside ``final``: ``.<name>.<kind>-<8 hex digits>``."""
    return final.with_name(f".{final.name}.{kind}-{secrets.token_hex(4)}")


def abandoned(final: Path) -> list[Path]:
    """The folders beside ``final`` named as a run names its staging folder
    (``.<name>.partial-<hex>``) or an earlier result it moves aside to replace it
    (``.<name>.old-<hex>``): a run killed while it writes or publishes leaves them. Real folders
    only, not links; their content is not read."""
    pattern = re.compile(rf"\.{re.escape(final.name)}\.({STAGING}|{ASIDE})-[0-9a-f]{{8}}")
    try:
        names = sorted(name for name in os.listdir(final.parent) if pattern.fullmatch(name))
    except OSError:
        return []
    folders = [final.parent / name for name in names]
    return [f for f in folders if not os.path.islink(f) and f.is_dir()]


@contextmanager
def staged_directory(final: Path, carried: Mapping[str, str] | None = None) -> Iterator[Path]:
    """Yield an empty staging folder beside ``final``; on success it is published as ``final``
    (see :func:`publish`) with a marker listing every file in it. On failure it is removed.
    ``carried``: files of the earlier result at ``final`` copied in as they are, with the digests
    its marker records (see :func:`write_marker`)."""
    final = Path(final)
    staging = _beside(final, STAGING)
    try:
        staging.mkdir()
    except OSError as exc:
        raise UserError(f"cannot write the output folder ({exc.strerror})", final.parent) from None
    try:
        yield staging
        write_marker(staging, carried or {})
        publish(staging, final, carried or {})
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def write_marker(folder: Path, carried: Mapping[str, str] | None = None) -> None:
    """List every file of a finished result in its marker with the SHA-256 of its bytes (what may
    later be replaced, and only as written). A file ``carried`` from an earlier result keeps the
    digest recorded when the tool wrote it: copied after an edit, it stays the user's."""
    from nqpf_sens import __version__

    files = sorted(
        str(Path(root, name).relative_to(folder))
        for root, _, names in os.walk(folder)
        for name in names
        if name != MARKER
    )
    digests = {name: (carried or {}).get(name) or file_digest(folder / name) for name in files}
    payload = {"tool": TOOL, "version": __version__, "files": files, "sha256": digests}
    write_json(payload, folder / MARKER)


def write_table(frame: pd.DataFrame, folder: Path, name: str) -> None:
    """CSV always; Parquet beside it when pyarrow is installed."""
    frame.to_csv(folder / f"{name}.csv", index=False, float_format="%.10g")
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return
    frame.to_parquet(folder / f"{name}.parquet", index=False)


def write_json(payload: dict[str, Any], path: Path) -> None:
    """Write JSON atomically (temporary file, then rename)."""
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(json.dumps(payload, indent=2, default=str), encoding="utf-8")
    os.replace(temporary, path)
