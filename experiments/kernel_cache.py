"""Whether an installed package keeps its compiled kernels across a reinstall.

Usage: ``python experiments/kernel_cache.py [CONFIG]`` (default ``configs/sobol.toml``); writes
``experiments/results/kernel_cache.csv``.

Builds a wheel of this checkout, installs it into a new virtual environment (sharing this
interpreter's packages) and runs CONFIG there, timing each run and counting the kernel cache files
it wrote (numba caches the kernels in the package's ``__pycache__`` folders; a file written during
a run is a kernel compiled by it): a first run, a second run, a run after ``pip install
--force-reinstall`` of the same wheel (every file written again, same contents), and a run after
one kernel module is edited (its kernels must compile again: a cache that outlived a change would
run stale code). A read-only install caches under ``~/.cache/numba``, keyed the same way; run this
as a user who cannot write the environment to see it.
"""

from __future__ import annotations

import csv
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "experiments" / "results" / "kernel_cache.csv"


def main() -> None:
    config = Path(sys.argv[1] if len(sys.argv) > 1 else "configs/sobol.toml")
    with tempfile.TemporaryDirectory(prefix="kernel_cache_") as temporary:
        folder = Path(temporary)
        pip = [sys.executable, "-m", "pip", "--quiet"]
        subprocess.run([*pip, "wheel", "--no-deps", "-w", folder, ROOT], check=True)
        wheel = next(folder.glob("*.whl"))
        venv = folder / "venv"
        subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", venv], check=True)
        python = venv / "bin" / "python"
        install = [python, "-m", "pip", "--quiet", "install", "--no-deps", wheel]
        subprocess.run(install, check=True)
        package = Path(
            subprocess.run(
                [python, "-c", "import nqpf_sens, os; print(os.path.dirname(nqpf_sens.__file__))"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()
        )

        def timed_run(step: str) -> dict:
            started = time.time()
            command = [python, "-m", "nqpf_sens", "run", config, "--quiet"]
            subprocess.run([*command, "--out", folder / "out"], cwd=ROOT, check=True)
            seconds = time.time() - started
            written = [p for p in package.rglob("*.nbc") if p.stat().st_mtime >= started]
            row = {"step": step, "seconds": round(seconds, 2), "kernels_compiled": len(written)}
            print(row)
            return row

        rows = [timed_run("first run after install"), timed_run("second run")]
        subprocess.run([*install, "--force-reinstall"], check=True)
        rows.append(timed_run("after pip install --force-reinstall"))
        kernels = package / "engine" / "kernels.py"
        kernels.write_text(kernels.read_text() + "\n# edited\n")
        rows.append(timed_run("after an edit of engine/kernels.py"))
    OUT.parent.mkdir(exist_ok=True)
    with OUT.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main()
