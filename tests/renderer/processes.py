"""Helpers of the no-orphan tests: which OpenSCAD runs are alive, and which run folders exist."""

import subprocess
import time


def live_openscad_runs(ancestor: int | None = None) -> list[int]:
    """Process ids of OpenSCAD runs still going (zombies and the sandbox's ``--version`` probe
    do not count), only those descended from ``ancestor`` when given."""
    ps = ["ps", "-ww", "-eo", "pid=,ppid=,stat=,args="]  # -ww: whole command lines, however long
    out = subprocess.run(ps, capture_output=True, text=True).stdout
    rows = [line.split(None, 3) for line in out.splitlines()]
    parent_of = {int(pid): int(ppid) for pid, ppid, _, _ in rows}

    def descends(pid: int) -> bool:
        while ancestor is not None and pid > 1:
            pid = parent_of.get(pid, 0)
            if pid == ancestor:
                return True
        return ancestor is None

    return [int(pid) for pid, _, stat, args in rows
            if args.split()[0].endswith("/openscad") and "--export-format" in args
            and not stat.startswith("Z") and descends(int(pid))]


def gone_soon(pids: set[int], seconds: float = 10.0) -> bool:
    """True once none of ``pids`` is a running OpenSCAD (a killed process takes a moment)."""
    deadline = time.monotonic() + seconds
    while set(live_openscad_runs()) & pids and time.monotonic() < deadline:
        time.sleep(0.05)
    return not set(live_openscad_runs()) & pids


def run_folders_in(folder) -> list[str]:
    """Names of the ``scadloop-*`` run folders in ``folder`` (a ``pathlib.Path``)."""
    return [p.name for p in folder.iterdir() if p.name.startswith("scadloop-")]
