"""The report layer: figures and ``report.html`` drawn from a run's saved files only."""

from nqpf_sens.report.html import build_report, rebuild_report
from nqpf_sens.report.saved_run import load_run

__all__ = ["build_report", "load_run", "rebuild_report"]
