"""Command line: ``python -m nqpf_sens run CONFIG.toml [--out DIR] [--jobs N] [--quiet]``,
``python -m nqpf_sens report FOLDER`` and ``python -m nqpf_sens --version``."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import NoReturn

from nqpf_sens.errors import RunInterrupted, UserError


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("nqpf_sens")
    except metadata.PackageNotFoundError:
        return "(not installed)"


class _Parser(argparse.ArgumentParser):
    """argparse's parser, whose errors are one line as the run's are (not the usage and the
    error on two to four)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {' '.join(message.split())} (see --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m nqpf_sens",
        description=(
            "How far can a composite index be trusted? Runs the index, Monte Carlo uncertainty and "
            "Sobol sensitivity analyses described by a TOML config."
        ),
    )
    parser.add_argument("--version", action="version", version=f"nqpf_sens {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run what a config describes and write results")
    run.add_argument("config", type=Path, help="TOML config, e.g. configs/sobol.toml")
    run.add_argument(
        "--out", type=Path, default=None, help="output folder (default: results/<run name>)"
    )
    run.add_argument(
        "--jobs", type=int, default=None, help="parallel workers (default: the config's, else 1)"
    )
    run.add_argument("--quiet", action="store_true", help="no progress bar and no printed tables")
    run.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run from the chunks it already computed",
    )
    report = commands.add_parser(
        "report", help="rebuild the figures and report.html of a finished run from its saved files"
    )
    report.add_argument("folder", type=Path, help="a run's output folder, e.g. results/sobol")
    report.add_argument(
        "--chinese",
        action="store_true",
        help="label units with their Chinese names (needs a CJK font)",
    )
    return parser


def stop_on_terminate() -> None:
    """SIGTERM (``timeout``, ``kill``, a batch scheduler) stops this process as Ctrl-C does: the
    staging folder removed, the lock released, the finished chunks kept and said; one is enough
    (later ones are ignored while it stops), and it stops a run started with Ctrl-C ignored (in
    the background of a script) too. A forked worker inherits the handler and dies as SIGTERM
    kills it."""
    this = os.getpid()

    def handler(signum: int, frame: FrameType | None) -> None:
        if os.getpid() != this:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        interrupt = signal.getsignal(signal.SIGINT)
        if not callable(interrupt):  # Ctrl-C ignored: the run stops all the same
            raise KeyboardInterrupt
        interrupt(signal.SIGINT, frame)  # raised, or deferred where Ctrl-C is

    signal.signal(signal.SIGTERM, handler)


def console() -> None:
    """The command (``python -m nqpf_sens``, ``nqpf-sens``): SIGTERM handled as Ctrl-C, and a
    second interruption while the first is reported, or at exit, ends the process as the first
    did instead of in a traceback."""
    stop_on_terminate()
    try:
        code = main()
    except KeyboardInterrupt:
        code = 130
    for name in (signal.SIGINT, signal.SIGTERM):
        signal.signal(name, signal.SIG_IGN)
    raise SystemExit(code)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "report":
            from nqpf_sens.report import rebuild_report

            print(f"wrote {rebuild_report(args.folder, args.chinese)}")
            return 0
        from nqpf_sens.running import run_config

        if args.jobs is not None and args.jobs < 1:
            raise UserError("must be at least 1", where="--jobs")
        run_config(args.config, out=args.out, jobs=args.jobs, quiet=args.quiet, resume=args.resume)
    except UserError as error:
        print(f"error: {error.one_line()}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interruption:
        message = (
            interruption.message
            if isinstance(interruption, RunInterrupted)
            else "interrupted: no results were written"
        )
        print(message, file=sys.stderr)
        return 130
    return 0
