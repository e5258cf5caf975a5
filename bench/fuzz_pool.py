"""Fuzz the render pool: programs mutated from valid corpus parts, all through Ray workers.

Mutations: token deletions, token swaps, huge numbers, deep recursion, forbidden
file reads, the known ways past the text screen, truncation, and random bytes. Every
program must come back with a typed status, the pool must survive, no host file may
show in any message, and no OpenSCAD process or ``scadloop-*`` folder may be left.
Prints counts per mutation and status and writes ``bench/results/fuzz_pool.json``.

    .venv/bin/python bench/fuzz_pool.py [--programs 1000] [--timeout 5] [--workers 2] [--no-screen]
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import write_json  # noqa: E402
from corpus.families import FAMILIES, generate  # noqa: E402
from renderer.openscad import RenderLimits, Status, run  # noqa: E402
from renderer.pool import RenderPool, ScoreRequest  # noqa: E402
from reward.score import Scorer  # noqa: E402

TOKEN = re.compile(r"[A-Za-z_$][A-Za-z0-9_]*|\d+\.?\d*|\S")
KNOWN_STATUSES = {str(s) for s in Status} | {"degenerate"}
HOST_SECRET = "root:x:0:0"
"""The first line of the host's /etc/passwd: it must never reach a message."""


def _tokens(code: str) -> list[str]:
    return TOKEN.findall(code)


def delete_tokens(code: str, rng: random.Random) -> str:
    tokens = _tokens(code)
    for _ in range(rng.randint(1, 3)):
        tokens.pop(rng.randrange(len(tokens)))
    return " ".join(tokens)


def swap_tokens(code: str, rng: random.Random) -> str:
    tokens = _tokens(code)
    i, j = rng.randrange(len(tokens)), rng.randrange(len(tokens))
    tokens[i], tokens[j] = tokens[j], tokens[i]
    return " ".join(tokens)


def huge_number(code: str, rng: random.Random) -> str:
    numbers = list(re.finditer(r"\d+\.?\d*", code))
    match = rng.choice(numbers)
    huge = rng.choice(["1e9", "1e300", "99999999", "-1e12", "0", "1e-300"])
    return code[: match.start()] + huge + code[match.end():]


def deep_recursion(code: str, rng: random.Random) -> str:
    depth = rng.choice([1000, 100000, 10**9])
    return code + f"\nmodule r(n) {{ if (n > 0) r(n - 1); else cube(1); }}\nr({depth});\n"


def forbidden_read(code: str, rng: random.Random) -> str:
    read = rng.choice(['import("/etc/passwd");', "include </etc/shadow>", "use <../../../etc/hosts>",
                       'surface(file = "/proc/self/environ");', 'import(str("/et", "c/passwd"));'])
    return read + "\n" + code


def hostile_read(code: str, rng: random.Random) -> str:
    """The four ways found past the text screen, aimed at the host's files."""
    read = rng.choice(["include <//etc/passwd>", "x = 1.5include </etc/passwd>",
                       'a = "x\\\n";\nimport("/root/.bashrc");', 'surface("\\x2fetc\\x2fpasswd");'])
    return read + "\n" + code


def truncate(code: str, rng: random.Random) -> str:
    return code[: rng.randrange(1, len(code))]


def random_bytes(code: str, rng: random.Random) -> str:
    position = rng.randrange(len(code))
    junk = "".join(chr(rng.randrange(1, 0x2FF)) for _ in range(rng.randint(1, 8)))
    return code[:position] + junk + code[position:]


MUTATIONS = [delete_tokens, swap_tokens, huge_number, deep_recursion, forbidden_read, hostile_read, truncate,
             random_bytes]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programs", type=int, default=1000)
    parser.add_argument("--timeout", type=float, default=5.0, help="OpenSCAD timeout per program, s")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-screen", action="store_true",
                        help="switch the text screen off, so every file read meets the sandbox alone")
    parser.add_argument("--out", default="bench/results/fuzz_pool.json")
    args = parser.parse_args(argv)

    rng = random.Random(args.seed)
    families = sorted(FAMILIES)
    limits = RenderLimits(timeout_s=args.timeout, screen=not args.no_screen)
    pool = RenderPool(Scorer(threads=1), workers=args.workers, limits=limits)
    sources = {}
    for family in families:
        part = generate(family, args.seed)
        mesh = run(part.code)
        pool.add_target(family, mesh.vertices, mesh.faces)
        sources[family] = part.code
    batch, kinds = [], []
    for i in range(args.programs):
        family = families[i % len(families)]
        mutation = MUTATIONS[rng.randrange(len(MUTATIONS))]
        batch.append(ScoreRequest(mutation(sources[family], rng), family))
        kinds.append(mutation.__name__)
    processes, folders = live_openscad(), run_folders()
    start = time.perf_counter()
    results = []
    for chunk in range(0, len(batch), 100):  # progress every 100 programs
        results += pool.score(batch[chunk : chunk + 100])
        print(f"  {len(results)}/{len(batch)} scored, {time.perf_counter() - start:.0f} s", flush=True)
    wall = time.perf_counter() - start
    statuses = collections.Counter(r.status for r in results)
    by_mutation = collections.defaultdict(collections.Counter)
    for kind, result in zip(kinds, results, strict=True):
        by_mutation[kind][result.status] += 1
    untyped = [s for s in statuses if s not in KNOWN_STATUSES]
    pool.close()
    time.sleep(2)  # killed actors take their sandboxes with them; give the kernel a moment
    leaked = sum(HOST_SECRET in r.detail for r in results)
    orphans = {"processes": len(live_openscad() - processes), "folders": len(run_folders() - folders)}
    # processes: OpenSCAD left running with no owner; folders: scadloop-* run folders left
    summary = {"programs": len(batch), "answered": len(results), "wall_s": round(wall, 1),
               "statuses": dict(statuses), "untyped_statuses": untyped,
               "replaced_actors": pool.replaced_actors, "timeout_s": args.timeout, "workers": args.workers,
               "host_file_in_messages": leaked, "orphans": orphans, "screen": not args.no_screen}
    for kind, counts in sorted(by_mutation.items()):
        print(f"{kind:<16} {dict(counts)}")
    print(f"{len(results)}/{len(batch)} answered in {wall:.0f} s; statuses {dict(statuses)}; "
          f"untyped {untyped}; actors replaced {pool.replaced_actors}; host file in messages {leaked}; "
          f"left behind {orphans}")
    write_json(args.out, {"summary": summary, "by_mutation": {k: dict(v) for k, v in by_mutation.items()}})
    clean = not untyped and not leaked and not any(orphans.values())
    return 0 if len(results) == len(batch) and clean else 1


def live_openscad() -> set[int]:
    """Running OpenSCAD processes that nobody owns any more: their chain of parents, past the
    sandbox's own ``bwrap`` processes, reaches init. (A live process of some other command on
    the machine has that command as an ancestor, and does not count.)"""
    out = subprocess.run(["ps", "-eo", "pid=,ppid=,stat=,comm="], capture_output=True, text=True).stdout
    rows = {int(pid): (int(ppid), stat, comm.strip())
            for pid, ppid, stat, comm in (line.split(None, 3) for line in out.splitlines())}

    def orphaned(pid: int) -> bool:
        parent = rows[pid][0]
        while parent in rows and rows[parent][2] in ("bwrap", "prlimit"):
            parent = rows[parent][0]
        return parent <= 1

    return {pid for pid, (_, stat, comm) in rows.items()
            if comm == "openscad" and not stat.startswith("Z") and orphaned(pid)}


def run_folders() -> set[str]:
    """``scadloop-*`` run folders in the temporary directory."""
    return {name for name in os.listdir(tempfile.gettempdir()) if name.startswith("scadloop-")}


if __name__ == "__main__":
    raise SystemExit(main())
