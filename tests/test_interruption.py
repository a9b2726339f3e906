"""An interrupted run leaves nothing that looks complete, and --resume finishes it identically."""

import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import children, synthetic_frame

from nqpf_sens import nqpf_spec
from nqpf_sens.running import run_config

CONFIG = """
[run]
name = "long"
kind = "sobol"
seed = 11
jobs = 1
chunk_size = 64  # 80 chunks: an interruption after the third lands well before the end
[data]
values = "values.csv"
[sampling]
n = 1024
bootstrap = 20
[outputs]
figures = false
[[factors]]
name = "norm"
kind = "choice"
key = "normalisation"
options = ["minmax", "rank", "zscore"]
[[factors]]
name = "noise"
kind = "noise"
spread = 0.1
[[factors]]
name = "w"
kind = "weights"
level = 0
"""


@pytest.fixture
def project(tmp_path, spec):
    synthetic_frame(spec).to_csv(tmp_path / "values.csv", index=False)
    (tmp_path / "long.toml").write_text(CONFIG)
    return tmp_path


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict[str, bytes]:
    """The tables of the run without a stop (the same for any workers)."""
    project = tmp_path_factory.mktemp("uninterrupted")
    synthetic_frame(nqpf_spec()).to_csv(project / "values.csv", index=False)
    (project / "long.toml").write_text(CONFIG)
    return csv_bytes(run_config(project / "long.toml", out=project / "long", quiet=True))


def command(out, *extra):
    return [sys.executable, "-m", "nqpf_sens", "run", "long.toml", "--out", out, "--quiet", *extra]


def start(project, *extra):
    """The run in a child that a Ctrl-C reaches: a test run started in the background (as a
    non-interactive shell starts a command with ``&``) passes on SIGINT ignored, and Python then
    never turns it into KeyboardInterrupt."""
    return subprocess.Popen(
        command("results/long", *extra),
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def wait_for_chunks(project, count, process, timeout=120):
    work = project / "results" / ".long.work"
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None:
        if len(list(work.glob("chunk_*.npz"))) >= count:
            return
        time.sleep(0.05)
    pytest.fail("the run finished or stalled before it could be interrupted")


def csv_bytes(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.csv"))}


@pytest.mark.parametrize(
    "how, jobs",
    [
        (signal.SIGKILL, 1),
        (signal.SIGINT, 1),
        (signal.SIGINT, 2),
        (signal.SIGKILL, 2),
        (signal.SIGTERM, 2),  # timeout's, kill's, a scheduler's: as Ctrl-C
    ],
)
def test_interrupted_run_resumes_to_identical_results(project, uninterrupted, how, jobs):
    """One worker (in the run's process) or two (forked copies of it: the noise makes the
    backend auto fork)."""
    (project / "long.toml").write_text(CONFIG.replace("jobs = 1", f"jobs = {jobs}"))
    process = start(project)
    wait_for_chunks(project, 3, process)
    process.send_signal(how)
    process.wait(timeout=60)
    assert process.returncode != 0
    if how != signal.SIGKILL:
        assert process.returncode == 130 and "--resume" in process.stderr.read()
        assert not (project / "results" / ".long.lock").exists()
    assert not (project / "results" / "long").exists(), (
        "an interrupted run must not leave an output folder"
    )
    done = len(list((project / "results" / ".long.work").glob("chunk_*.npz")))
    assert done >= 3

    resumed = start(project, "--resume")
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    assert (project / "results" / "long" / "manifest.json").is_file()
    assert not (project / "results" / ".long.work").exists()
    assert csv_bytes(project / "results" / "long") == uninterrupted


@pytest.mark.parametrize("backend", ["threading", "loky", "dask"])
def test_a_run_stopped_on_any_backend_says_so_in_one_line(project, backend):
    """Ctrl-C with joblib's threads, loky's processes or a local dask cluster: one line, exit 130.
    A dask run printed its scheduler's and client's tracebacks (about one stop in five) and joblib
    a warning about the results left unread."""
    (project / "long.toml").write_text(
        CONFIG.replace("jobs = 1", f'jobs = 2\nbackend = "{backend}"')
    )
    process = start(project)
    wait_for_chunks(project, 3, process)
    process.send_signal(signal.SIGINT)
    _, error = process.communicate(timeout=120)
    assert process.returncode == 130 and error.count("\n") == 1, error
    assert error.startswith("interrupted: no results were written"), error


FIGS = [sys.executable, "-m", "nqpf_sens", "run", "figs.toml", "--quiet"]


def drawing(project, background: bool = False) -> subprocess.Popen:
    """A run of ``FIGS`` started (in the ``background`` of a script: Ctrl-C ignored) and caught
    while it draws its figures."""
    (project / "figs.toml").write_text(
        '[run]\nname = "figs"\nkind = "montecarlo"\njobs = 2\n[data]\nvalues = "values.csv"\n'
        '[sampling]\nn = 64\n[[factors]]\nname = "w"\nkind = "weights"\nlevel = 0\n'
    )
    ignored = signal.SIG_IGN if background else signal.SIG_DFL
    run = subprocess.Popen(
        FIGS,
        cwd=project,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, ignored),
    )
    deadline = time.time() + 120
    while not list((project / "results").glob(".figs.partial-*/figures/*.png")):
        assert run.poll() is None and time.time() < deadline, "no figure was drawn"
        time.sleep(0.02)
    return run


def run_again(project) -> subprocess.CompletedProcess:
    """The next run into the same output folder; it draws no figures: its lock and folders, not
    its figures, are at stake."""
    config = (project / "figs.toml").read_text() + "[outputs]\nfigures = false\n"
    (project / "again.toml").write_text(config)  # named "figs" too
    again = [*FIGS[:4], "again.toml", *FIGS[5:]]
    return subprocess.run(again, cwd=project, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("background", [False, True])
def test_a_run_terminated_while_drawing_stops_as_ctrl_c_does(project, background):
    """SIGTERM while the figures are drawn, to a run started as a command or in the background
    of a script (Ctrl-C ignored): one line, exit 130, no staging folder or lock left (they were
    left, with no message), and the next run succeeds."""
    run = drawing(project, background)
    run.terminate()
    _, error = run.communicate(timeout=60)
    assert run.returncode == 130 and error.startswith("interrupted"), error
    assert error.count("\n") == 1, error
    left = sorted(p.name for p in (project / "results").iterdir())
    assert left == [".figs.work"] and "--resume" in error  # the chunks, for --resume
    again = run_again(project)
    assert again.returncode == 0 and not again.stderr, again.stderr


def test_a_run_terminated_twice_while_drawing_does_not_hang(project):
    """Two SIGTERMs 20 ms apart while the figures are drawn: the run waited for ever on the
    figure workers (an executor told to wait for its queue, then interrupted)."""
    run = drawing(project)
    run.terminate()
    time.sleep(0.02)
    run.terminate()
    try:
        _, error = run.communicate(timeout=60)
    finally:
        run.kill()
    assert run.returncode == 130 and error.startswith("interrupted"), error


@pytest.mark.parametrize(
    "how, said",
    [
        (
            signal.SIGKILL,
            "was killed (SIGKILL: for lack of memory?) while drawing the figures: lower [run] "
            "jobs, or set [outputs] figures = false;",
        ),
        (signal.SIGTERM, "was stopped by SIGTERM, sent from outside the run while drawing"),
    ],
)
def test_a_figure_worker_killed_while_drawing_is_reported_not_waited_for(project, how, said):
    """The system killing a figure's worker (out of memory, say) left the run waiting for ever
    for that figure; now one line that names the signal, exit 2, the chunks kept."""
    run = drawing(project)
    os.kill(max(children(run.pid)), how)
    try:
        _, error = run.communicate(timeout=60)
    finally:
        run.kill()
    assert run.returncode == 2 and error.count("\n") == 1, error
    assert error.startswith("error: figs.toml: a worker process ") and said in error, error
    assert sorted(p.name for p in (project / "results").iterdir()) == [".figs.work"]


def test_a_run_killed_while_drawing_leaves_no_worker_holding_its_lock(project):
    """The figures' forked workers die with a killed run: they held the output folder's lock, and
    every later run was told that another run was writing it, for ever. The next run names the
    killed run's unfinished folder in a warning."""
    run = drawing(project)
    run.kill()
    run.wait()
    deadline = time.time() + 20
    while True:
        again = run_again(project)
        if again.returncode == 0 or time.time() > deadline:
            break
        time.sleep(0.5)
    assert again.returncode == 0, again.stderr
    left = list((project / "results").glob(".figs.partial-*"))  # the killed run's: named, kept
    assert len(left) == 1 and f"warning: {left[0]}" in again.stderr, again.stderr


def test_loky_s_resource_tracker_says_nothing_of_semaphores_a_stop_left():
    """A stopped loky run's workers can leave semaphores registered with loky's resource
    tracker, which then warned on the run's screen, beside its one line, that they had leaked
    and could not be found: the run quiets that tracker before loky starts it."""
    script = (
        "from nqpf_sens.uncertainty.study import quiet_resource_tracker\n"
        "quiet_resource_tracker()\n"
        "from joblib.externals.loky.backend import resource_tracker\n"
        "resource_tracker.ensure_running()\n"
        "resource_tracker.register('/nqpf-sens-test-semaphore', 'semlock')\n"
    )
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    for quiet in (False, True):
        code = script if quiet else script.replace("quiet_resource_tracker()\n", "")
        run = subprocess.run(  # its output read to the end: the tracker's too, which outlives it
            [sys.executable, "-c", code], env=environment, capture_output=True, text=True
        )
        assert run.returncode == 0
        assert ("leaked semlock" in run.stderr) is not quiet, run.stderr
