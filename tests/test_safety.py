"""A run never harms a folder it did not create, never runs planted code, never injects script."""

import dataclasses
import io
import json
import os
import pickle
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import alive, children, synthetic_frame

from nqpf_sens import nqpf_spec
from nqpf_sens.cli import main
from nqpf_sens.outputs import LOCK_TEXT, MARKER, destination_lock
from nqpf_sens.uncertainty.chunks import (
    KEY_MEMBER,
    WORK_STAMP,
    _key_digest,
    chunk_key,
    load_arrays,
    save_arrays,
)

BASE = '[run]\nname = "base"\n[data]\nvalues = "data/values.csv"\n[outputs]\nfigures = false\n'
STUDY = """[run]
name = "study"
kind = "montecarlo"
seed = 5
chunk_size = 64
[data]
values = "data/values.csv"
[sampling]
n = 512
[outputs]
figures = false
[[factors]]
name = "w"
kind = "weights"
level = 0
"""


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes (what must survive)."""
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


@pytest.fixture
def project(tmp_path, spec, monkeypatch):
    (tmp_path / "data").mkdir()
    synthetic_frame(spec, n_units=12).to_csv(tmp_path / "data" / "values.csv", index=False)
    (tmp_path / "base.toml").write_text(BASE)
    (tmp_path / "study.toml").write_text(STUDY)
    thesis = tmp_path / "thesis"
    (thesis / "figures").mkdir(parents=True)
    (thesis / "chapter1.tex").write_text("\\chapter{One}")
    (thesis / "figures" / "plot.pdf").write_bytes(b"%PDF-1.4")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def refused(capsys, *argv) -> str:
    code = main(list(argv))
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1, lines
    return lines[0]


def test_a_folder_the_tool_did_not_create_survives_every_way_of_pointing_at_it(
    project, capsys, monkeypatch
):
    thesis = project / "thesis"
    before = tree(project)
    (project / "link").symlink_to(thesis, target_is_directory=True)
    before_links = tree(project)
    ways = [
        ("run", "base.toml", "--out", "thesis"),
        ("run", "base.toml", "--out", "thesis/"),
        ("run", "base.toml", "--out", str(thesis)),
        ("run", "base.toml", "--out", "thesis/figures/.."),
        ("run", "base.toml", "--out", "link"),
        ("run", "base.toml", "--out", "."),
        ("run", "base.toml", "--out", ".."),
        ("run", "base.toml", "--out", "/"),
        ("run", "base.toml", "--out", "data"),
        ("run", "study.toml", "--out", "thesis"),
        ("run", "study.toml", "--out", "thesis", "--resume"),
        ("report", "thesis"),
        ("report", "link"),
        ("report", "."),
    ]
    for argv in ways:
        refused(capsys, *argv)
    assert tree(project) == before_links
    monkeypatch.setenv("HOME", str(thesis))
    assert "home folder" in refused(capsys, "run", "base.toml", "--out", str(thesis))
    monkeypatch.chdir(thesis)  # the working folder itself
    refused(capsys, "run", str(project / "base.toml"), "--out", ".")
    assert tree(project) == before_links
    (project / "link").unlink()
    assert tree(project) == before


def test_config_folder_and_package_are_refused(project, capsys):
    import nqpf_sens

    (project / "configs").mkdir()
    (project / "configs" / "own.toml").write_text(BASE.replace("data/", "../data/"))
    assert "own.toml" in refused(capsys, "run", "configs/own.toml", "--out", "configs")
    package = Path(nqpf_sens.__file__).parent
    assert "installed nqpf_sens package" in refused(
        capsys, "run", "base.toml", "--out", str(package)
    )
    assert (project / "configs" / "own.toml").is_file() and (package / "__init__.py").is_file()


def test_an_earlier_result_is_replaced_but_not_one_holding_a_foreign_file(project, capsys):
    assert main(["run", "base.toml", "--quiet"]) == 0
    result = project / "results" / "base"
    assert (result / MARKER).is_file()
    (result / "baseline_scores.csv").unlink()  # a listed file the user deleted: nothing to lose
    assert main(["run", "base.toml", "--quiet"]) == 0  # its own files: replaced
    assert (result / "baseline_scores.csv").read_text().startswith("unit,")
    (result / "notes.txt").write_text("mine")
    assert "notes.txt" in refused(capsys, "run", "base.toml")
    assert (result / "notes.txt").read_text() == "mine"
    (result / "notes.txt").unlink()
    (result / "data.csv").symlink_to(project / "data" / "values.csv")
    assert "data.csv" in refused(capsys, "run", "base.toml")
    assert (project / "data" / "values.csv").is_file()


def test_a_file_of_an_earlier_result_edited_since_is_never_replaced(project, capsys):
    """A file the user changed inside a result is theirs now: a run does not replace the result,
    and nothing in it changes; ``report`` carries an edited table into the new result as it is
    (and a later run still finds it edited), but never replaces an edited report or figure. A
    result whose marker records no digests (an older version's) cannot show its files unchanged,
    so it is refused too."""
    assert main(["run", "base.toml", "--quiet"]) == 0
    result = project / "results" / "base"
    edited = result / "baseline_scores.csv"
    annotated = edited.read_text() + "my annotation\n"
    edited.write_text(annotated)
    saved = tree(result)
    message = refused(capsys, "run", "base.toml")
    assert "'baseline_scores.csv', changed since nqpf_sens wrote it" in message
    assert tree(result) == saved
    assert main(["report", "results/base"]) == 0
    assert edited.read_text() == annotated
    assert "'baseline_scores.csv', changed since" in refused(capsys, "run", "base.toml")
    assert edited.read_text() == annotated
    report = result / "report.html"
    report.write_text(report.read_text().replace("</body>", "<p>my notes</p></body>"))
    saved = tree(result)
    assert "'report.html', changed since" in refused(capsys, "report", "results/base")
    assert tree(result) == saved
    report.unlink()
    marker = json.loads((result / MARKER).read_text())
    del marker["sha256"]
    (result / MARKER).write_text(json.dumps(marker))
    saved = tree(result)
    assert "older nqpf_sens" in refused(capsys, "run", "base.toml")
    assert tree(result) == saved


def test_a_table_edited_while_report_rebuilds_the_page_is_never_lost(project, capsys, monkeypatch):
    """``report`` copies the tables, then draws for seconds: a table edited after its copy would
    be deleted with the old folder, so the publication is refused and the edit stays."""
    from nqpf_sens.report import html

    assert main(["run", "base.toml", "--quiet"]) == 0
    table = project / "results" / "base" / "baseline_scores.csv"
    render = html._render

    def edit_while_drawing(*arguments, **options):
        render(*arguments, **options)
        table.write_text(table.read_text() + "my annotation\n")

    monkeypatch.setattr(html, "_render", edit_while_drawing)
    line = refused(capsys, "report", "results/base")
    assert "'baseline_scores.csv', changed while the report was rebuilt" in line
    assert table.read_text().endswith("my annotation\n")


def test_a_run_published_just_before_report_takes_the_lock_is_read_whole(
    project, capsys, monkeypatch
):
    """``report`` reads the run's files and digests under the folder's lock: read before it, a
    run published in between left copies of its files under the earlier run's digests (a mixed
    result that the next run refused as edited)."""
    from nqpf_sens.report import html

    assert main(["run", "base.toml", "--quiet"]) == 0
    lock = html.destination_lock

    def run_first(final):
        (project / "base.toml").write_text(BASE.replace('name = "base"', 'name = "base"\nseed = 7'))
        assert main(["run", "base.toml", "--quiet"]) == 0
        return lock(final)

    monkeypatch.setattr(html, "destination_lock", run_first)
    assert main(["report", "results/base"]) == 0
    monkeypatch.setattr(html, "destination_lock", lock)
    assert main(["run", "base.toml", "--quiet"]) == 0  # the result is whole: replaced


def test_a_file_edited_after_the_last_check_is_kept_not_deleted(project, capsys, monkeypatch):
    """An edit in the instant between publication's check and the deletion of the old result:
    the new result is published, the edited file is kept where the old result went, and a
    warning says so."""
    from nqpf_sens import outputs

    assert main(["run", "base.toml", "--quiet"]) == 0
    capsys.readouterr()
    check = outputs.check_replaceable

    def edit_after_the_check(folder, carried=(), copies=None):
        found = check(folder, carried, copies)
        if copies is not None:  # publication's check, the last before the deletion
            with open(folder / "baseline_scores.csv", "a") as table:
                table.write("my annotation\n")
        return found

    monkeypatch.setattr(outputs, "check_replaceable", edit_after_the_check)
    assert main(["run", "base.toml", "--quiet"]) == 0
    warned = capsys.readouterr().err
    assert "'baseline_scores.csv' changed as it was being replaced, and is kept" in warned
    kept = [p for p in (project / "results").glob(".base.*/baseline_scores.csv")]
    assert len(kept) == 1 and kept[0].read_text().endswith("my annotation\n")


def test_without_renameat2_a_folder_made_during_the_swap_is_said_with_the_earlier_result(
    project, capsys, monkeypatch
):
    """Where the system cannot swap two folders, the earlier result is renamed aside, then the new
    one moved in: a folder made at the destination in between leaves the earlier result aside,
    and the line says where (it named the deleted staging folder)."""
    from nqpf_sens import outputs

    assert main(["run", "base.toml", "--quiet"]) == 0
    monkeypatch.setattr(outputs, "_renameat2", lambda *arguments: False)
    rename = os.rename

    def made_in_between(source, target):
        rename(source, target)
        if ".old-" in str(target):
            (project / "results" / "base").mkdir()
            (project / "results" / "base" / "theirs.txt").write_text("mine")

    monkeypatch.setattr(os, "rename", made_in_between)
    line = refused(capsys, "run", "base.toml")
    aside = next((project / "results").glob(".base.old-*"))
    assert f"nothing was published, and the earlier result is in {aside}" in line
    assert (aside / MARKER).is_file()
    assert (project / "results" / "base" / "theirs.txt").read_text() == "mine"


def test_a_pipe_or_an_unlistable_folder_in_an_earlier_result_is_refused(
    project, capsys, monkeypatch
):
    """A listed name that is now a pipe is not the tool's file (reading it for its digest could
    wait forever), and a folder the tool cannot list may hold anything: both are refused."""
    assert main(["run", "base.toml", "--quiet"]) == 0
    result = project / "results" / "base"
    (result / "baseline_scores.csv").unlink()
    os.mkfifo(result / "baseline_scores.csv")
    assert "holds 'baseline_scores.csv', which nqpf_sens did not write" in refused(
        capsys, "run", "base.toml"
    )
    (result / "baseline_scores.csv").unlink()
    walk = os.walk

    def unlistable(top, onerror=None, followlinks=False):
        onerror(PermissionError(13, "Permission denied", str(Path(top) / "figures")))
        yield from walk(top, onerror=onerror, followlinks=followlinks)

    monkeypatch.setattr(os, "walk", unlistable)
    assert "holds 'figures', a folder that nqpf_sens cannot list (Permission denied)" in refused(
        capsys, "run", "base.toml"
    )


def test_no_folder_is_created_through_a_link_to_nothing(project, capsys, tmp_path_factory):
    """A dangling link where the output folder, or a folder above it, would be: resolving the
    path would create the folders it names, wherever they point."""
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    (project / "results").symlink_to(elsewhere / "a" / "b")
    assert "results: is a symbolic link to a folder that does not exist" in refused(
        capsys, "run", "base.toml"
    )
    (project / "lnk").symlink_to(elsewhere / "c")
    assert "lnk: is a symbolic link" in refused(capsys, "run", "base.toml", "--out", "lnk/out")
    assert list(elsewhere.iterdir()) == []
    (elsewhere / "c").mkdir()  # a link to a folder that exists is resolved as the system does
    assert main(["run", "base.toml", "--quiet", "--out", "lnk/out"]) == 0
    assert (elsewhere / "c" / "out" / MARKER).is_file()


def test_a_marker_naming_outside_files_is_not_trusted(project, capsys):
    assert main(["run", "base.toml", "--quiet"]) == 0
    marker = project / "results" / "base" / MARKER
    marker.write_text('{"tool": "nqpf_sens", "files": ["../../thesis/chapter1.tex"]}')
    assert "no marker" in refused(capsys, "run", "base.toml")
    marker.write_text('["baseline_scores.csv"]')  # JSON, but not a marker
    assert "no marker" in refused(capsys, "run", "base.toml")
    assert (project / "thesis" / "chapter1.tex").is_file()


def test_folders_honour_the_umask(project):
    previous = os.umask(0o022)
    try:
        assert main(["run", "base.toml", "--quiet"]) == 0
    finally:
        os.umask(previous)
    for path in (project / "results", project / "results" / "base"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o755, path


def test_a_second_run_on_the_same_destination_is_refused(project, capsys):
    (project / "results").mkdir()
    with destination_lock(project / "results" / "base"):
        assert "another nqpf_sens run" in refused(capsys, "run", "base.toml")
    assert main(["run", "base.toml", "--quiet"]) == 0  # the lock is gone with its holder


@pytest.mark.parametrize("command", ["run", "report"])
def test_a_file_with_the_lock_files_name_is_the_users_and_survives(project, capsys, command):
    """A file of the user's (or an empty one, or a link) where the lock file goes is neither
    used as the lock nor deleted (it was, when the run ended); a lock left by a run that was
    killed is taken over."""
    (project / "results").mkdir()
    assert main(["run", "base.toml", "--quiet"]) == 0
    argv = ["run", "base.toml", "--quiet"] if command == "run" else ["report", "results/base"]
    lock = project / "results" / ".base.lock"
    for content in ("my notes\n", ""):
        lock.write_text(content)
        assert "cannot tell it made" in refused(capsys, *argv)
        assert lock.read_text() == content
    lock.unlink()
    lock.symlink_to(project / "base.toml")
    assert "cannot tell it made" in refused(capsys, *argv)
    assert lock.is_symlink() and (project / "base.toml").is_file()
    lock.unlink()
    lock.write_bytes(LOCK_TEXT)  # as a run that was killed leaves it
    assert main(argv) == 0
    assert not lock.exists()


def test_folders_beside_the_destination_named_as_a_killed_runs_are_named_never_deleted(
    project, capsys
):
    """A folder named as a run names its staging folder or a result it moves aside is what a
    killed run leaves, or a user's copy of one, or a user's own: the next run names it in a
    warning and deletes nothing in it, nor behind a link of that name."""
    results = project / "results"
    assert main(["run", "base.toml", "--quiet"]) == 0
    capsys.readouterr()

    def folder(name: str) -> Path:
        path = results / name
        path.mkdir()
        (path / "notes.txt").write_text("mine")
        return path

    named = [folder(".base.partial-deadbeef"), folder(".base.old-20240101")]
    (named[1] / MARKER).write_bytes((results / "base" / MARKER).read_bytes())  # a copied result
    (named[1] / "figures").symlink_to(project / "thesis" / "figures")
    others = [folder(".base.partial-DEADBEEF"), folder(".other.partial-01234567")]
    (results / ".base.partial-89abcdef").symlink_to(project / "thesis")
    saved = {path: tree(path) for path in [*named, *others, project / "thesis"]}
    assert main(["run", "base.toml", "--quiet"]) == 0
    warned = capsys.readouterr().err
    assert {path: tree(path) for path in [*named, *others, project / "thesis"]} == saved
    assert all(str(path) in warned for path in named)
    assert not any(str(path) in warned for path in others)
    assert ".base.partial-89abcdef" not in warned
    assert main(["report", "results/base"]) == 0  # report takes the same lock: the same warning
    assert {path: tree(path) for path in [*named, *others, project / "thesis"]} == saved


def test_a_marker_too_deep_or_too_large_to_read_is_no_marker(project, capsys):
    """A marker json parses only by recursing 100,000 deep (a traceback), or one of 20 MB (read
    whole): the folder is not taken for a result, in one line, and survives."""
    assert main(["run", "base.toml", "--quiet"]) == 0
    marker = project / "results" / "base" / MARKER
    for content in ("[" * 100_000 + "]" * 100_000, " " * 20 * 2**20 + "{}"):
        marker.write_text(content)
        for argv in (["run", "base.toml", "--quiet"], ["report", "results/base"]):
            assert "marker" in refused(capsys, *argv)
        assert marker.read_text() == content


def interrupted_study(project, monkeypatch):
    """Run the study with its last chunk failing, as if interrupted: the work folder is kept."""
    from nqpf_sens.uncertainty import study as uncertainty

    real = uncertainty.evaluate_rows

    def stop_at_last(study, start, stop):
        if stop == study.design.n_rows:
            raise KeyboardInterrupt
        return real(study, start, stop)

    monkeypatch.setattr(uncertainty, "evaluate_rows", stop_at_last)
    assert main(["run", "study.toml", "--quiet", "--jobs", "1"]) == 130
    monkeypatch.setattr(uncertainty, "evaluate_rows", real)
    work = project / "results" / ".study.work"
    return work, sorted(work.glob("chunk_*.npz"))


def count_evaluations(monkeypatch) -> list[int]:
    """Record the first row of every span the study evaluates."""
    from nqpf_sens.uncertainty import study as uncertainty

    real, starts = uncertainty.evaluate_rows, []

    def counted(study, start, stop):
        starts.append(start)
        return real(study, start, stop)

    monkeypatch.setattr(uncertainty, "evaluate_rows", counted)
    return starts


def test_resume_never_unpickles_and_recomputes_damaged_chunks(project, monkeypatch, capsys):
    assert main(["run", "study.toml", "--quiet", "--out", "fresh"]) == 0
    expected = tree(project / "fresh")
    work, chunks = interrupted_study(project, monkeypatch)
    assert "--resume" in capsys.readouterr().err
    planted = project / "planted"

    class Exploit:
        def __reduce__(self):
            return (os.mkdir, (str(planted),))

    chunks[0].write_bytes(pickle.dumps({"rank_counts": Exploit()}))
    chunks[1].write_bytes(chunks[1].read_bytes()[:100])  # truncated
    chunks[2].write_bytes(chunks[3].read_bytes())  # another span's chunk
    with np.load(chunks[3]) as archive:  # one bit of one count flipped
        counts = archive["rank_counts"]
    raw = bytearray(chunks[3].read_bytes())
    at = raw.index(counts.tobytes()) + counts.nbytes // 2
    raw[at] ^= 1
    chunks[3].write_bytes(raw)
    with np.load(chunks[4]) as archive:  # other arrays beside the chunk's own digest
        arrays = {name: archive[name] for name in archive.files}
    np.savez(chunks[4], **arrays | {"rank_counts": np.ones(1, dtype=np.uint8)})
    start = int(chunks[5].stem.split("_")[1])  # arrays of a wrong shape under a right digest
    key = chunk_key((work / WORK_STAMP).read_text(), start, start + 64)
    own = {name: array for name, array in arrays.items() if name != "key"}
    save_arrays(chunks[5], own | {"scores": own["scores"][:1]}, key)
    evaluated = count_evaluations(monkeypatch)
    assert main(["run", "study.toml", "--quiet", "--resume"]) == 0
    assert len(evaluated) == 7  # the six damaged chunks and the one never finished
    assert not planted.exists()
    got = tree(project / "results" / "study")
    assert {k: v for k, v in got.items() if k.endswith(".csv")} == {
        k: v for k, v in expected.items() if k.endswith(".csv")
    }
    assert not work.exists()


def test_resume_recomputes_chunks_whose_counts_no_span_gives(project, monkeypatch):
    """Chunk files rebuilt with a valid digest but counts 64 scenarios cannot give (every rank,
    rank shift or tier counted twice) are computed again, not merged."""
    assert main(["run", "study.toml", "--quiet", "--out", "fresh"]) == 0
    expected = tree(project / "fresh")
    work, chunks = interrupted_study(project, monkeypatch)
    stamp = (work / WORK_STAMP).read_text()
    forgeries = ("rank_counts", "shift_counts", "tier_counts")
    for chunk, forged in zip(chunks[:3], forgeries, strict=True):
        start = int(chunk.stem.split("_")[1])
        with np.load(chunk) as archive:
            arrays = {name: archive[name] for name in archive.files if name != "key"}
        arrays[forged] = 2 * arrays[forged]
        save_arrays(chunk, arrays, chunk_key(stamp, start, start + 64))
    evaluated = count_evaluations(monkeypatch)
    assert main(["run", "study.toml", "--quiet", "--resume"]) == 0
    assert len(evaluated) == 4  # the three forged chunks and the one never finished
    got = tree(project / "results" / "study")
    assert {k: v for k, v in got.items() if k.endswith(".csv")} == {
        k: v for k, v in expected.items() if k.endswith(".csv")
    }


def test_resume_passes_over_a_chunk_name_that_is_no_row_number(project, monkeypatch):
    """'²' is a digit to Python's isdigit but not a number to int(): no traceback."""
    work, _ = interrupted_study(project, monkeypatch)
    (work / "chunk_\u00b2.npz").write_bytes(b"")
    assert main(["run", "study.toml", "--quiet", "--resume"]) == 0


def test_resume_after_the_data_changed_starts_over(project, monkeypatch, capsys):
    work, _ = interrupted_study(project, monkeypatch)
    values = pd.read_csv(project / "data" / "values.csv")
    values.iloc[0, 1] *= 3
    values.to_csv(project / "data" / "values.csv", index=False)
    capsys.readouterr()
    assert main(["run", "study.toml", "--quiet", "--resume"]) == 0
    assert "changed since the interrupted run; starting over" in capsys.readouterr().err
    assert main(["run", "study.toml", "--quiet", "--out", "fresh"]) == 0
    resumed, fresh = tree(project / "results" / "study"), tree(project / "fresh")
    assert {k: v for k, v in resumed.items() if k.endswith(".csv")} == {
        k: v for k, v in fresh.items() if k.endswith(".csv")
    }


def test_resume_after_the_code_changed_starts_over(project, monkeypatch, capsys, tmp_path):
    """The package's version number stays while its code changes: the fingerprint hashes every
    module and the versions of the libraries that compute."""
    from nqpf_sens.uncertainty import chunks

    package = tmp_path / "package"
    (package / "engine").mkdir(parents=True)
    (package / "engine" / "kernels.py").write_text("SCALE = 1\n")
    before = chunks.code_digest(package)
    (package / "engine" / ".#kernels.py").symlink_to("nowhere")  # an editor's lock: no module
    assert chunks.code_digest(package) == before
    (package / "engine" / "kernels.py").write_text("SCALE = 2\n")
    assert chunks.code_digest(package) != before
    work, _ = interrupted_study(project, monkeypatch)
    monkeypatch.setattr(chunks, "code_digest", lambda: "another version of the code")
    capsys.readouterr()
    assert main(["run", "study.toml", "--quiet", "--resume"]) == 0
    assert "changed since the interrupted run; starting over" in capsys.readouterr().err


def test_data_changed_while_the_run_reads_it_is_refused(project, monkeypatch, capsys):
    """A data file saved between the moment the run read it and the moment it fingerprints its
    inputs (the audits run in between): the chunks would be of the old data under the new data's
    fingerprint, and a resume on the new data would take them. Refused in one line, nothing
    written."""

    from nqpf_sens import running

    real = running._plan

    def saved_meanwhile(*args, **kwargs):
        plan = real(*args, **kwargs)
        values = pd.read_csv(project / "data" / "values.csv")
        values.iloc[0, 1] *= 3
        values.to_csv(project / "data" / "values.csv", index=False)
        return plan

    monkeypatch.setattr(running, "_plan", saved_meanwhile)
    line = refused(capsys, "run", "study.toml")
    assert "values.csv: changed while the run was reading it; run again" in line
    assert not (project / "results").exists()


def test_a_stamp_longer_than_a_fingerprint_is_not_one(project, monkeypatch, capsys):
    """The work folder's fingerprint file holding the right fingerprint and a gigabyte after it
    (a sparse file; it was read whole, 2 GB of memory): only one character more than a
    fingerprint is read, and it is not the run's."""
    from nqpf_sens.uncertainty.chunks import _stamped

    work, _ = interrupted_study(project, monkeypatch)
    stamp = work / WORK_STAMP
    token = stamp.read_text()
    with open(stamp, "ab") as handle:
        handle.truncate(len(token) + 2**30)
    assert _stamped(stamp, len(token)) == token + "\0"
    capsys.readouterr()
    assert main(["run", "study.toml", "--quiet", "--resume"]) == 0
    assert "changed since the interrupted run; starting over" in capsys.readouterr().err


def test_an_interruption_after_the_result_is_written_says_so(project, monkeypatch, capsys):
    """Ctrl-C or SIGTERM while the summary prints, the result already published: it said "no
    results were written" of a complete result."""

    from nqpf_sens import running

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(running, "_print_summary", interrupted)
    assert main(["run", "study.toml"]) == 130
    error = capsys.readouterr().err
    assert error.startswith("interrupted after") and "results/study was written" in error, error
    assert (project / "results" / "study" / "rank_stability.csv").is_file()


def test_a_foreign_work_folder_is_refused(project, capsys):
    (project / "results" / ".study.work").mkdir(parents=True)
    (project / "results" / ".study.work" / "mine.txt").write_text("keep")
    assert "not an nqpf_sens work folder" in refused(capsys, "run", "study.toml")
    assert (project / "results" / ".study.work" / "mine.txt").read_text() == "keep"


@pytest.mark.parametrize("code, said", [("ENOSPC", "disk is full"), ("EDQUOT", "quota is used")])
def test_disk_full_while_writing_is_one_line_and_leaves_nothing(
    project, monkeypatch, capsys, code, said
):
    import errno

    def full(*args, **kwargs):
        raise OSError(getattr(errno, code), os.strerror(getattr(errno, code)), "scores.csv")

    monkeypatch.setattr(pd.DataFrame, "to_csv", full)
    line = refused(capsys, "run", "base.toml")
    assert said in line and "free space and run again" in line
    assert not (project / "results").exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ulimit -f is POSIX's")
@pytest.mark.parametrize(
    "config, limit, named", [("study", 16, ".study.work/chunk_"), ("base", 2, "results/base:")]
)
def test_the_file_size_limit_is_named_with_the_file_and_leaves_no_part_of_it(
    project, config, limit, named
):
    """A chunk, then a table, passing ``ulimit -f``: the error blamed the config ("File too
    large") and left the chunk's .tmp file truncated; --resume is offered only where there are
    chunks to resume from."""
    import resource

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit * 1024, resource.RLIM_INFINITY))

    result = subprocess.run(
        [sys.executable, "-m", "nqpf_sens", "run", f"{config}.toml", "--quiet"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=limited,
    )
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert named in result.stderr and "the file-size limit (ulimit -f) was reached" in (
        result.stderr
    )
    assert not list((project / "results").rglob("*.tmp"))
    assert ("--resume" in result.stderr) == (config == "study")  # a baseline run has no chunks


def test_a_system_failure_naming_no_file_is_not_blamed_on_the_config(project, capsys, monkeypatch):
    """numba's cache, written past ``ulimit -f``, raises without a file's name: the line said the
    config was being written."""
    import errno

    from nqpf_sens import running

    def too_large(*arguments):
        raise OSError(errno.EFBIG, "File too large")

    monkeypatch.setattr(running, "_inputs", too_large)
    line = refused(capsys, "run", "base.toml")
    assert line.startswith("error: base.toml: a file the system did not name: the file-size limit")


def test_report_on_a_full_disk_is_one_line_and_leaves_the_run_as_it_was(
    project, monkeypatch, capsys
):
    import errno

    assert main(["run", "base.toml", "--quiet"]) == 0
    before = tree(project / "results")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", "report.html")

    monkeypatch.setattr(Path, "write_text", full)
    line = refused(capsys, "report", "results/base")
    assert "the disk is full" in line and "--resume" not in line
    assert tree(project / "results") == before
    assert not list((project / "results").glob(".base.*"))


@pytest.mark.parametrize(
    "code, again", [("EACCES", False), ("EROFS", False), ("EIO", False), ("EBUSY", True)]
)
def test_only_a_failure_that_may_pass_asks_to_run_again(project, monkeypatch, capsys, code, again):
    import errno

    def failing(*args, **kwargs):
        raise OSError(getattr(errno, code), os.strerror(getattr(errno, code)), "scores.csv")

    monkeypatch.setattr(pd.DataFrame, "to_csv", failing)
    line = refused(capsys, "run", "base.toml")
    assert os.strerror(getattr(errno, code)) in line
    assert line.endswith("; run again") == again, line


def test_the_results_folder_deleted_mid_run_is_one_line(project, monkeypatch, capsys):
    import shutil

    from nqpf_sens.uncertainty import study as uncertainty

    real = uncertainty.evaluate_rows

    def delete_results(study, start, stop):
        shutil.rmtree(project / "results", ignore_errors=True)
        return real(study, start, stop)

    monkeypatch.setattr(uncertainty, "evaluate_rows", delete_results)
    assert "disappeared while it was being written" in refused(
        capsys, "run", "study.toml", "--jobs", "1"
    )


HOSTILE = ['<script>alert("u")</script>', "<img src=x onerror=alert(1)>", "Tom & 'Jerry' $x^$"]


def test_hostile_names_never_reach_the_page_unescaped(tmp_path, spec, monkeypatch):
    from nqpf_sens.running import run_config

    frame = synthetic_frame(spec, n_units=8)
    frame["unit"] = [*HOSTILE, "NA", "None", "nan", "01", "u7"]
    frame.to_csv(tmp_path / "values.csv", index=False)
    units = pd.DataFrame(
        {
            "unit": frame.unit,
            "region": ["<b>East</b>"] * 4 + ["West"] * 4,
            "gdp_per_capita": range(1000, 9000, 1000),
        }
    )
    units.to_csv(tmp_path / "units.csv", index=False)
    config = f"""[run]
name = "hostile"
kind = "sobol"
[data]
values = "values.csv"
units = "units.csv"
[sampling]
n = 32
bootstrap = 10
[outputs]
svg = true
focus_unit = '{HOSTILE[1]}'
[[factors]]
name = '{HOSTILE[0]}'
kind = "weights"
level = 0
description = "</td></script><script>alert(2)</script>"
[[factors]]
name = "n"
kind = "choice"
key = "normalisation"
options = ["minmax", "zscore"]
"""
    (tmp_path / "hostile.toml").write_text(config)
    folder = run_config(tmp_path / "hostile.toml", out=tmp_path / "out", quiet=True)
    scores = pd.read_csv(folder / "baseline_scores.csv", keep_default_na=False, dtype={"unit": str})
    assert set(scores.unit) == set(frame.unit)  # NA, None, nan and 01 are names, as written
    texts = [*HOSTILE, "<b>East</b>", "</script><script>alert(2)</script>"]

    def check(page: str) -> None:
        for text in texts:
            assert text not in page
        assert "<script>alert" not in page and "onerror=alert" not in page.replace(
            "onerror=alert(1)&gt;", ""
        )

    check((folder / "report.html").read_text(encoding="utf-8"))
    for svg in (folder / "figures").glob("*.svg"):
        check(svg.read_text(encoding="utf-8"))
    renamed = pd.read_csv(folder / "rank_stability.csv", keep_default_na=False).unit[0]
    for path in folder.glob("*.csv"):  # a unit renamed by hand in every table that names it
        table = pd.read_csv(path, keep_default_na=False, dtype=str)
        if "unit" in table:
            table["unit"] = table.unit.replace(renamed, "<svg onload=alert(3)>")
            table.to_csv(path, index=False)
    assert main(["report", str(folder)]) == 0
    page = (folder / "report.html").read_text(encoding="utf-8")
    check(page)
    assert "<svg onload" not in page and "&lt;svg onload=alert(3)&gt;" in page


def damaged(folder: Path, how: str) -> None:
    if how == "corrupt manifest":
        (folder / "manifest.json").write_text("{not json")
    elif how == "empty manifest":
        (folder / "manifest.json").write_text("")
    elif how == "manifest of another shape":
        (folder / "manifest.json").write_text("[1, 2]")
    elif how == "manifest nested 5,000 levels deep":  # beyond json's recursion
        (folder / "manifest.json").write_text('{"a": ' + "[" * 5000 + "]" * 5000 + "}")
    elif how == "missing csv":
        (folder / "rank_stability.csv").unlink()
    elif how == "empty csv":
        (folder / "tier_bands.csv").write_text("")
    elif how == "other columns":
        (folder / "rank_shift.csv").write_text("a,b\n1,2\n")
    elif how == "text where numbers are due":
        frame = pd.read_csv(folder / "tier_bands.csv")
        frame["p_nominal_tier"] = "high"
        frame.to_csv(folder / "tier_bands.csv", index=False)
    elif how == "an infinite rank":
        frame = pd.read_csv(folder / "rank_stability.csv")
        frame["p95_rank"] = frame.p95_rank.astype(float)
        frame.loc[0, "p95_rank"] = np.inf
        frame.to_csv(folder / "rank_stability.csv", index=False)
    elif how == "no count of scenarios":
        frame = pd.read_csv(folder / "rank_stability.csv")
        frame["scenarios"] = np.nan
        frame.to_csv(folder / "rank_stability.csv", index=False)
    elif how == "text in a column the checks pass over":
        frame = pd.read_csv(folder / "convergence.csv")
        frame["block_1"] = "x"
        frame.to_csv(folder / "convergence.csv", index=False)
    elif how == "a listed file removed":
        (folder / "glossary.csv").unlink()
    elif how == "manifest facts of another shape":
        manifest = json.loads((folder / "manifest.json").read_text())
        manifest["about"] = {"years": 5, "cells": "many"}
        manifest["design"] = {"n": "many"}
        (folder / "manifest.json").write_text(json.dumps(manifest))
    elif how in ABOUT_EDITS:
        manifest = json.loads((folder / "manifest.json").read_text())
        manifest["about"] = ABOUT_EDITS[how](manifest["about"])
        (folder / "manifest.json").write_text(json.dumps(manifest))
    elif how == "negative scenarios":
        manifest = json.loads((folder / "manifest.json").read_text())
        manifest["scenarios"] = -1
        (folder / "manifest.json").write_text(json.dumps(manifest))
    elif how == "a control character in a unit's name, in every table":  # no SVG could hold it
        for table in folder.glob("*.csv"):
            table.write_text(table.read_text().replace("unit03", "unit\x0103"))
    elif how == "an interval of 500%":
        manifest = json.loads((folder / "manifest.json").read_text())
        manifest["design"]["interval"] = 5
        (folder / "manifest.json").write_text(json.dumps(manifest))
    else:  # a hand's edit of one cell or row of a table that passes the type checks
        name, edit = EDITS[how]
        frame = pd.read_csv(folder / f"{name}.csv")
        edit(frame).to_csv(folder / f"{name}.csv", index=False)


#: what a manifest's ``about`` (the facts the page states) can be edited to hold
ABOUT_EDITS = {
    "'about' not an object": lambda about: ["index", "values"],
    "cells by provenance as a list": lambda about: {**about, "cells": [1, 2]},
    "published values as words": lambda about: {
        **about,
        "published": {"label": "x", "note": "y", "values": {"total": ["2022", "high"]}},
    },
    "a published value not finite": lambda about: {
        **about,
        "published": {"label": "x", "note": "y", "values": {"total": [2022, float("nan")]}},
    },
    "a comparison without its sentence": lambda about: {**about, "comparison": {"title": "t"}},
    "a regional ordering of numbers": lambda about: {
        **about,
        "regional_ordering": {"label": "x", "order": [1, 2]},
    },
}

#: impossible values a table of numbers can be edited to hold (12 units, three tiers)
EDITS = {
    "a rank beyond the units": ("rank_stability", lambda f: f.assign(p95_rank=99)),
    "a probability above 1": ("rank_stability", lambda f: f.assign(p_nominal_rank=5.0)),
    "a tier beyond the tiers": ("tier_bands", lambda f: f.assign(nominal_tier=1_000_000)),
    "a negative tier": ("tier_bands", lambda f: f.assign(most_likely_tier=-3)),
    "a unit twice": ("rank_stability", lambda f: pd.concat([f, f.iloc[:1]])),
    "a unit of no other table": ("rank_stability", lambda f: f.assign(unit="u" + f.unit)),
    "a ghost unit": ("tier_bands", lambda f: pd.concat([f, f.iloc[:1].assign(unit="ghost")])),
}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A run with its figures, which a copy of passes the report's checks (the copies are
    damaged)."""
    project = tmp_path_factory.mktemp("finished")
    (project / "data").mkdir()
    synthetic_frame(nqpf_spec(), n_units=12).to_csv(project / "data" / "values.csv", index=False)
    (project / "study.toml").write_text(STUDY.replace("figures = false", "figures = true"))
    finished = project / "study"
    assert main(["run", str(project / "study.toml"), "--out", str(finished), "--quiet"]) == 0
    copy = project / "copy"
    shutil.copytree(finished, copy, symlinks=True)
    assert main(["report", str(copy)]) == 0
    return finished


@pytest.mark.parametrize(
    "how",
    [
        "corrupt manifest",
        "empty manifest",
        "manifest of another shape",
        "manifest nested 5,000 levels deep",
        "missing csv",
        "empty csv",
        "other columns",
        "text where numbers are due",
        "an infinite rank",
        "no count of scenarios",
        "text in a column the checks pass over",
        "a listed file removed",
        "manifest facts of another shape",
        "negative scenarios",
        "an interval of 500%",
        *ABOUT_EDITS,
        "a control character in a unit's name, in every table",
        *EDITS,
    ],
)
def test_report_on_a_damaged_folder_is_one_line_and_rewrites_nothing(
    finished_run, tmp_path, capsys, how
):
    folder = tmp_path / "study"
    shutil.copytree(finished_run, folder, symlinks=True)
    damaged(folder, how)
    before = tree(folder)
    refused(capsys, "report", str(folder))
    assert tree(folder) == before


def test_a_page_that_cannot_be_written_draws_no_figure(finished_run, tmp_path, capsys, monkeypatch):
    """A saved value the page's text cannot read is refused before seconds of drawing."""
    from nqpf_sens.report import html

    drawn = []
    monkeypatch.setattr(html, "make_figures", lambda *arguments: drawn.append(arguments))
    for how in ("no count of scenarios", "manifest facts of another shape"):
        folder = tmp_path / how.replace(" ", "_")
        shutil.copytree(finished_run, folder, symlinks=True)
        damaged(folder, how)
        refused(capsys, "report", str(folder))
    assert not drawn


def test_units_equal_up_to_rounding_share_a_rank(project):
    values = pd.read_csv(project / "data" / "values.csv")
    values.loc[1, values.columns[1:]] = values.loc[0, values.columns[1:]].to_numpy() * (1 + 1e-15)
    values.to_csv(project / "data" / "values.csv", index=False)
    assert main(["run", "base.toml", "--quiet"]) == 0
    scores = pd.read_csv(project / "results" / "base" / "baseline_scores.csv").set_index("unit")
    assert scores.loc["unit00", "rank"] == scores.loc["unit01", "rank"]


def test_a_unit_without_data_is_kept_only_when_asked_and_then_named(project, capsys):
    values = pd.read_csv(project / "data" / "values.csv")
    values.loc[3, values.columns[1:]] = np.nan
    values.to_csv(project / "data" / "values.csv", index=False)
    (project / "base.toml").write_text(BASE + '[pipeline]\nimputation = "mean"\n')
    assert "unit 'unit03' has no observed value" in refused(capsys, "run", "base.toml")
    (project / "base.toml").write_text(
        BASE.replace("[data]\n", "[data]\nallow_empty_units = true\n")
        + '[pipeline]\nimputation = "mean"\n'
    )
    assert main(["run", "base.toml", "--quiet"]) == 0
    import json

    notes = json.loads((project / "results" / "base" / "manifest.json").read_text())["notes"]
    assert any("unit03" in note for note in notes)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signals are Linux's")
@pytest.mark.parametrize("backend", ["loky", "fork"])
def test_worker_processes_die_with_a_killed_run(project, backend):
    (project / "workers.toml").write_text(
        STUDY.replace("seed = 5", f'seed = 5\nbackend = "{backend}"\njobs = 2')
        .replace("n = 512", "n = 65536")
        .replace("chunk_size = 64", "chunk_size = 256")
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "nqpf_sens", "run", "workers.toml", "--quiet"], cwd=project
    )
    deadline = time.time() + 120
    work = project / "results" / ".study.work"
    while time.time() < deadline and not list(work.glob("chunk_*.npz")):
        time.sleep(0.1)
    workers = children(process.pid)
    assert workers, "no worker process was started"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    deadline = time.time() + 20
    while time.time() < deadline and any(alive(w) for w in workers):
        time.sleep(0.2)
    assert not any(alive(w) for w in workers)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forked workers are Linux's")
def test_a_killed_worker_ends_the_run_with_one_line_and_keeps_its_chunks(project):
    """A worker the system kills (out of memory) stops the run in one line, the other worker
    with it, and the finished chunks stay for --resume."""
    (project / "workers.toml").write_text(
        STUDY.replace("seed = 5", 'seed = 5\nbackend = "fork"\njobs = 2')
        .replace("n = 512", "n = 65536")
        .replace("chunk_size = 64", "chunk_size = 256")
        + '[[factors]]\nname = "noise"\nkind = "noise"\n'  # slower: the run is still going
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "nqpf_sens", "run", "workers.toml", "--quiet"],
        cwd=project,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    work = project / "results" / ".study.work"
    try:
        while time.time() < deadline and len(list(work.glob("chunk_*.npz"))) < 2:
            time.sleep(0.05)
        workers = children(process.pid)
        assert len(workers) == 2, (workers, process.poll(), process.stderr.read())
        os.kill(min(workers), signal.SIGKILL)
        _, error = process.communicate(timeout=60)
    finally:  # a run that hangs must not outlive the test
        if process.poll() is None:
            process.kill()
    assert process.returncode == 2
    assert error.count("\n") == 1 and "a worker process was killed (SIGKILL" in error, error
    assert "--resume" in error and any(work.glob("chunk_*.npz"))
    assert not (project / "results" / "study").exists()
    deadline = time.time() + 20
    while time.time() < deadline and any(alive(w) for w in workers):
        time.sleep(0.2)
    assert not any(alive(w) for w in workers)


def test_chunk_files_hold_plain_arrays(project, monkeypatch):
    work, chunks = interrupted_study(project, monkeypatch)
    with np.load(chunks[0], allow_pickle=False) as archive:
        assert "key" in archive.files and all(
            archive[name].dtype != object for name in archive.files
        )


COUNTS = np.arange(3 * 102 * 102, dtype=np.uint8).reshape(3, 102, 102)  # beyond zip's 4 KB
LAYOUT = {"rank_counts": (COUNTS.shape, "unsigned")}


@pytest.mark.parametrize("damage", ["shape", "data", "truncated", "method", "key"])
def test_a_damaged_chunk_file_is_never_trusted(tmp_path, damage):
    """numpy reads only the bytes an array's header announces, so one bit turning a shape's 3
    into a 1 leaves the rest unread: every member is checked to its end before any is used."""
    path = tmp_path / "chunk.npz"
    save_arrays(path, {"rank_counts": COUNTS}, "key")
    assert np.array_equal(load_arrays(path, LAYOUT, "key")["rank_counts"], COUNTS)
    raw = bytearray(path.read_bytes())
    if damage == "shape":
        raw[raw.index(b"'shape': (3, 102, 102)") + 10] ^= 0x02
    elif damage == "data":
        raw[raw.index(COUNTS.tobytes()) + 5000] ^= 1
    elif damage == "truncated":
        raw = raw[: len(raw) // 2]
    elif damage == "method":  # stored -> "shrunk" in the central directory: zipfile refuses
        raw[raw.index(b"PK\x01\x02") + 10] = 1
    path.write_bytes(raw)
    assert load_arrays(path, LAYOUT, "other" if damage == "key" else "key") is None


def signed_zip(path, members: dict[str, bytes], key: str, compression=zipfile.ZIP_STORED) -> None:
    """A chunk file of raw ``members`` with a valid digest under ``key`` (which is no secret: a
    forger can compute it)."""
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(KEY_MEMBER, _key_digest(key, archive.infolist()))


def npy(array: np.ndarray) -> bytes:
    stored = io.BytesIO()
    np.lib.format.write_array(stored, array)
    return stored.getvalue()


@pytest.mark.parametrize(
    "members",
    [
        {"rank_counts": COUNTS.tobytes()},  # not an .npy member: numpy would give bytes
        {"rank_counts.npy": npy(np.full(COUNTS.shape, 2**63, dtype=np.uint64))},  # not an int64
        {"rank_counts.npy": npy(COUNTS.astype(np.int16))},  # signed counts
        {"rank_counts.npy": npy(COUNTS[:1])},  # another shape
        {"rank_counts.npy": npy(np.zeros((30, 102, 102), dtype=np.uint8))},  # larger than allowed
    ],
    ids=["raw", "beyond-int64", "signed", "shape", "size"],
)
def test_a_forged_chunk_of_the_wrong_layout_is_never_used(tmp_path, members):
    """Even under a valid digest, a chunk whose arrays are not of its span's layout is computed
    again rather than merged (or stopping the run with a traceback)."""
    path = tmp_path / "chunk.npz"
    signed_zip(path, members, "key")
    assert load_arrays(path, LAYOUT, "key") is None


@pytest.mark.parametrize(
    "compression", [zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2], ids=["deflate", "bzip2"]
)
def test_a_compressed_member_is_never_decompressed(tmp_path, monkeypatch, compression):
    """Chunk files are written uncompressed: a compressed member (a few bytes that inflate to
    gigabytes, say), even under a valid digest, is refused unopened."""
    path = tmp_path / "chunk.npz"
    signed_zip(path, {"rank_counts.npy": npy(COUNTS)}, "key", compression)
    opened = record_opened_members(monkeypatch)
    assert load_arrays(path, LAYOUT, "key") is None
    assert opened == []


def test_a_chunk_file_larger_than_its_layout_is_not_parsed(tmp_path, monkeypatch):
    """A file of a million one-letter members took seconds and half a gigabyte to parse."""
    path = tmp_path / "chunk.npz"
    save_arrays(path, {"rank_counts": COUNTS}, "key")
    with open(path, "ab") as handle:
        handle.write(bytes(2 * 2**20))
    parsed = []
    monkeypatch.setattr(np, "load", lambda *a, **k: parsed.append(a))
    assert load_arrays(path, LAYOUT, "key") is None
    assert parsed == []


def test_a_fifo_in_place_of_a_chunk_does_not_block(tmp_path):
    path = tmp_path / "chunk.npz"
    os.mkfifo(path)
    found = []
    reader = threading.Thread(target=lambda: found.append(load_arrays(path, LAYOUT, "key")))
    reader.daemon = True
    reader.start()
    reader.join(30)
    assert not reader.is_alive() and found == [None]


def test_a_chunk_is_never_written_through_a_link_left_at_its_temporary_name(tmp_path):
    outside = tmp_path / "thesis.tex"
    outside.write_text("\\chapter{One}")
    path = tmp_path / "work" / "chunk.npz"
    path.parent.mkdir()
    path.with_name("chunk.npz.tmp").symlink_to(outside)
    save_arrays(path, {"rank_counts": COUNTS}, "key")
    assert outside.read_text() == "\\chapter{One}"
    assert not path.is_symlink()
    assert np.array_equal(load_arrays(path, LAYOUT, "key")["rank_counts"], COUNTS)


def record_opened_members(monkeypatch) -> list[str]:
    """The names of the zip members opened from now on."""
    opened = []
    real_open = zipfile.ZipFile.open

    def recorded(self, name, *args, **kwargs):
        opened.append(getattr(name, "filename", name))
        return real_open(self, name, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", recorded)
    return opened


def test_a_foreign_chunk_is_refused_before_anything_is_decompressed(tmp_path, monkeypatch):
    """A deflated digest member announcing a gigabyte, and a member larger than its layout
    allows, are refused from the zip directory: neither is opened."""
    path = tmp_path / "chunk.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("rank_counts.npy", npy(COUNTS))
        archive.writestr(KEY_MEMBER, bytes(2**24))  # 16 MB of zeros: a few KB deflated
    opened = record_opened_members(monkeypatch)
    assert load_arrays(path, LAYOUT, "key") is None
    assert opened == []


def test_a_symlinked_work_folder_is_refused_before_running(project, capsys):
    (project / "results").mkdir()
    (project / "elsewhere").mkdir()
    (project / "results" / ".study.work").symlink_to(
        project / "elsewhere", target_is_directory=True
    )
    assert "symbolic link" in refused(capsys, "run", "study.toml")
    assert not any((project / "elsewhere").iterdir())


def run_size(**changes):
    """A small Monte Carlo run's dimensions (31 units, 15 indicators, 1,024 scenarios in one
    chunk, two workers), with ``changes``."""
    from nqpf_sens.uncertainty.resources import RunSize
    from nqpf_sens.uncertainty.study import Chunking

    small = dict(rows=1024, columns=15, saltelli=False, base_n=1024, bootstrap=0, kept=1024)
    small |= dict(years=1, units=31, aggregates=4, regions=0, tiers=3, jobs=2)
    small |= dict(chunking=Chunking.plan(1024, 1024, False, 1024, row_bytes=1))
    return RunSize(**(small | dict(per_scenario=8 * 31 * 8) | changes))


def test_the_resource_check_counts_the_per_unit_histograms(tmp_path):
    from nqpf_sens.errors import UserError
    from nqpf_sens.uncertainty.resources import BUDGET, check_resources
    from nqpf_sens.uncertainty.study import Chunking

    size = run_size(
        units=10_000,
        chunking=Chunking.plan(400, 1024, False, 1024, row_bytes=1),
        per_scenario=8 * 10_000 * 8,
    )
    check_resources(size, tmp_path, memory=64 * 2**30, disk=64 * 2**30)  # fits a large machine
    square = r"they grow with the square of the units \(10,000 here\)"
    alone = dataclasses.replace(size, jobs=1)
    enough_alone = sum(b for b, _ in alone.memory().values()) / BUDGET * 1.01
    with pytest.raises(UserError, match=rf"\[run\] jobs: .*rank histograms.*{square}, and each"):
        check_resources(size, tmp_path, memory=enough_alone, disk=64 * 2**30)
    check_resources(alone, tmp_path, memory=enough_alone, disk=64 * 2**30)  # as it advised
    for many in (size, alone):  # not even one worker fits: fewer workers would not do
        with pytest.raises(UserError, match=rf"\[data\]: .*{square}: use fewer units"):
            check_resources(many, tmp_path, memory=2 * 2**30, disk=64 * 2**30)
    with pytest.raises(UserError, match="chunk files .* need about .* more than the 80% of the"):
        check_resources(size, tmp_path, memory=64 * 2**30, disk=2**30)


def test_the_resource_check_counts_no_batch_longer_than_a_chunk():
    """A Saltelli design's chunks all hold rows and keep the smaller default: the memory estimate
    counts each worker's batch by the longest chunk there is, not by the longer default of chunks
    of counts alone, which such a design never has (it refused runs that fit)."""
    from nqpf_sens.uncertainty.study import Chunking, chunk_row_bytes

    n_rows = 262_144
    chunking = Chunking.plan(None, n_rows, True, 0, chunk_row_bytes(1, 31, 8, 5))
    size = run_size(
        rows=n_rows,
        columns=18,
        saltelli=True,
        base_n=65_536,
        kept=65_536,
        aggregates=9,
        regions=5,
        chunking=chunking,
        per_scenario=9272,  # a weights-only NQPF scenario: 21,713 of them in 192 MiB
    )
    assert chunking.rows > chunking.holding_rows == chunking.longest == size.batch_rows


def test_the_resource_check_counts_what_forked_workers_copy(tmp_path):
    """A forked worker comes to copy the pages of the run's process it writes to."""
    from nqpf_sens.errors import UserError
    from nqpf_sens.uncertainty.resources import FORKED_WORKER_BYTES, check_resources

    threads, forks = run_size(jobs=8), run_size(jobs=8, forked=True)
    needed = sum(b for b, _ in forks.memory().values())
    assert needed - sum(b for b, _ in threads.memory().values()) == 8 * FORKED_WORKER_BYTES
    check_resources(threads, None, memory=int(needed))
    with pytest.raises(UserError, match=r"\[run\] jobs: .*forked workers.*backend = \"threading\""):
        check_resources(forks, None, memory=int(needed))


def test_folders_made_for_a_destination_that_cannot_be_made_are_removed(project, capsys):
    """A destination whose name the file system refuses (too long): the parent folders the run
    made for it are gone again, and a folder of the user's on the way is kept."""
    (project / "mine").mkdir()
    out = project / "mine" / "new" / "deeper" / ("n" * 300) / "result"
    assert "cannot create the folder" in refused(capsys, "run", "base.toml", "--out", str(out))
    assert (project / "mine").is_dir() and not (project / "mine" / "new").exists()


@pytest.mark.parametrize("fails", ["raising", "silently"])
def test_a_replaced_result_that_cannot_be_deleted_is_said_not_fatal(
    project, capsys, monkeypatch, fails
):
    """The new result is published; the old one's files cannot be deleted (a read-only folder:
    an error; a folder that cannot be searched: files that seem absent), which root never meets:
    a warning names where they are, and the run succeeds (it exited 2 after publishing, and
    `report` with a traceback; an unsearchable folder was left without a word)."""
    from nqpf_sens import outputs

    assert main(["run", "base.toml", "--quiet"]) == 0

    def read_only(folder, found):
        if fails == "raising":
            raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(outputs, "remove_result", read_only)
    for argv in (["run", "base.toml", "--quiet"], ["report", "results/base"]):
        assert main(argv) == 0
        assert "warning: the replaced result could not be deleted" in capsys.readouterr().err
    assert (project / "results" / "base" / "report.html").is_file()
    assert len(list((project / "results").glob(".base.*"))) == 2  # the two replaced results


def test_an_output_path_through_a_loop_of_links_is_one_line(project, capsys):
    (project / "loopA").symlink_to("loopB")
    (project / "loopB").symlink_to("loopA")
    assert "cannot be resolved" in refused(capsys, "run", "base.toml", "--out", "loopA/result")


def test_a_run_folder_that_cannot_be_read_is_one_line(project, capsys, monkeypatch):
    """``report`` of a folder the user may not read (which root never meets): one line."""
    from nqpf_sens.report import html

    assert main(["run", "base.toml", "--quiet"]) == 0

    def unreadable(folder):
        raise PermissionError(13, "Permission denied", str(folder / ".nqpf_sens-result.json"))

    monkeypatch.setattr(html, "result_files", unreadable)
    assert "cannot be read (Permission denied)" in refused(capsys, "report", "results/base")


def test_an_audit_step_too_large_for_memory_is_refused_before_it_starts(tmp_path, monkeypatch):
    """The importance audit holds units x units kernels, the exact rank bounds every pair of
    units' leaf differences: a few thousand units outgrew the machine's memory, and the run
    ended in the study's advice (lower [sampling] n), which does not help. Each such step is
    estimated first and refused with the key that drops it."""
    import nqpf_sens as ns
    from nqpf_sens.audit import importance
    from nqpf_sens.uncertainty import resources

    def never(*args, **kwargs):
        raise AssertionError("the step ran")

    monkeypatch.setattr(importance, "importance_tables", never)
    monkeypatch.setattr("nqpf_sens.running.importance_tables", never)
    config = ns.config_from_dict({"run": {"kind": "baseline"}}, tmp_path)
    needed = importance.peak_bytes(31, config.audit.bootstrap)
    monkeypatch.setattr(resources, "available_memory", lambda: needed)  # 80% of it usable
    with pytest.raises(
        ns.UserError, match=r"\[audit\] importance: the importance audit of 31 units"
    ):
        ns.run(config)
    monkeypatch.setattr(resources, "available_memory", lambda: 2 * needed)
    with pytest.raises(AssertionError, match="the step ran"):
        ns.run(config)
    monkeypatch.setattr(resources, "available_memory", lambda: 1024)
    with pytest.raises(ns.UserError, match=r"\[audit\] coherence: .* set it to false"):
        ns.run(config)


def equal_dimensions(n_indicators: int, n_dimensions: int):
    """Indicators of equal weight split evenly into dimensions of equal weight."""
    from nqpf_sens.engine.spec import IndexSpec

    return IndexSpec(
        levels=(
            tuple(f"i{j}" for j in range(n_indicators)),
            tuple(f"d{k}" for k in range(n_dimensions)),
            ("index",),
        ),
        parents=(
            np.repeat(np.arange(n_dimensions), n_indicators // n_dimensions),
            np.zeros(n_dimensions, dtype=int),
        ),
        weights=(np.ones(n_indicators), np.ones(n_dimensions)),
        direction=np.ones(n_indicators),
        transform_flag=np.zeros(n_indicators, dtype=bool),
    )


def test_the_audit_memory_estimates_cover_the_measured_peaks():
    """tracemalloc's peak of each step stays within its estimate, and above half of it (an
    estimate far too high would refuse runs that fit): 200 random units of 12 indicators, and
    the correlations of 120 indicators, whose rows are most of their memory."""
    import tracemalloc

    from nqpf_sens.audit import coherence, importance
    from nqpf_sens.audit import rank_bounds as exact_bounds

    spec = equal_dimensions(12, 3)
    leaves = np.random.default_rng(0).random((200, 12))
    dimensions = leaves.reshape(200, 3, 4).mean(axis=2)
    levels = [leaves, dimensions, dimensions.mean(axis=1, keepdims=True)]
    low, high, _ = exact_bounds.weight_region(spec, spec.weights, [0.25, 0.25])
    steps = {
        "importance": (
            lambda: importance.importance_tables(levels, spec, spec.weights, 0.95, 1, 100),
            importance.peak_bytes(200, 100),
        ),
        "rank bounds": (
            lambda: exact_bounds.difference_range(leaves, spec, low, high),
            exact_bounds.peak_bytes(200, 12),
        ),
    }
    wide = equal_dimensions(120, 2)
    values = np.random.default_rng(1).random((10, 120))
    means = values.reshape(10, 2, 60).mean(axis=2)
    wide_levels = [values, means, means.mean(axis=1, keepdims=True)]
    steps["correlations"] = (
        lambda: [coherence.correlations(wide_levels, wide, m) for m in ("pearson", "spearman")],
        coherence.peak_bytes(wide, 10),
    )
    for name, (step, estimate) in steps.items():
        tracemalloc.start()
        step()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert estimate / 2 < peak <= estimate, (name, peak, estimate)


def test_a_table_saved_again_by_a_spreadsheet_is_read(finished_run, tmp_path):
    """A spreadsheet saving a table as UTF-8 starts it with a byte-order mark: still the table
    (it was refused as damaged)."""
    folder = tmp_path / "study"
    shutil.copytree(finished_run, folder, symlinks=True)
    path = folder / "baseline_scores.csv"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert main(["report", str(folder)]) == 0


def test_a_report_of_a_link_names_the_folder_to_give(finished_run, tmp_path, capsys):
    (tmp_path / "link").symlink_to(finished_run, target_is_directory=True)
    line = refused(capsys, "report", str(tmp_path / "link"))
    assert line.endswith("is a symbolic link; give the real folder"), line


def test_aggregates_named_like_statistics_pass_the_report_s_checks(tmp_path):
    """The checks of a saved run's values read statistics by their names (a 'p_' column is a
    probability, a '_rank' column a rank): a dimension coded 'p_env' or 'x_rank', whose scores
    stand in columns named after it, failed the run that wrote them."""
    (tmp_path / "meta.csv").write_text(
        "code,dimension,weight,direction\na1,p_env,1,positive\na2,p_env,1,positive\n"
        "b1,x_rank,1,positive\n"
    )
    (tmp_path / "values.csv").write_text("unit,a1,a2,b1\nU1,1,5,3\nU2,4,2,6\nU3,7,8,1\nU4,2,9,4\n")
    (tmp_path / "r.toml").write_text(
        '[run]\nkind = "montecarlo"\n[data]\nmetadata = "meta.csv"\nvalues = "values.csv"\n'
        "[sampling]\nn = 32\n[outputs]\nfigures = false\n[tiers]\nbounds = [1, 2]\n"
        '[[factors]]\nname = "w"\nkind = "weights"\nlevel = 0\n'
    )
    out = tmp_path / "out"
    assert main(["run", str(tmp_path / "r.toml"), "--out", str(out), "--quiet"]) == 0
    assert "p_env_p95" in pd.read_csv(out / "tier_bands.csv")
    assert main(["report", str(out)]) == 0


@pytest.mark.parametrize("key", ["[outputs] focus_unit", "[pipeline] reference_unit"])
def test_an_unknown_unit_named_by_a_long_text_is_quoted_by_its_beginning(project, capsys, key):
    """A unit name of 20,000 characters that names no unit: the line quotes its beginning and
    its length, not the whole name."""
    name = "x" * 20_000
    section, option = key[1:].split("] ")
    if section == "outputs":
        config = BASE + f'{option} = "{name}"\n'
    else:
        config = BASE + f'[pipeline]\n{option} = "{name}"\n'
    (project / "long.toml").write_text(config)
    line = refused(capsys, "run", "long.toml")
    assert "... (20,000 characters)" in line and len(line) < 500
