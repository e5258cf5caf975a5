"""The command line of ``python -m corpus.build`` (options -> :class:`corpus.build.BuildSettings`).

The build itself is :func:`corpus.build.build`; this module only parses, reports and exits
(bad options are one line on stderr, exit 2; an interrupted build exits 130 and resumes when
the same command runs again).
"""

from __future__ import annotations

import sys

from corpus._cli import Parser, UsageError, fail, positive_int, workers_arg
from corpus.build import BuildSettings, build
from corpus.build_info import summary
from renderer.errors import RendererUnavailable


def parse_args(argv: list[str] | None = None):
    import corpus.build

    parser = Parser(prog="corpus.build", description=corpus.build.__doc__.splitlines()[0])
    parser.add_argument("--n", type=positive_int, required=True, help="parts to generate")
    parser.add_argument(
        "--out", required=True, help="output folder (created; re-run the same command to resume)"
    )
    parser.add_argument("--seed", type=int, default=0, help="build seed: family order, part seeds, splits")
    parser.add_argument(
        "--workers",
        type=workers_arg,
        default="auto",
        help="render actors: 'auto' (one per CPU) or N; 0 runs here",
    )
    parser.add_argument(
        "--size", type=positive_int, default=128, help="view size in pixels (reward default 128)"
    )
    parser.add_argument(
        "--families", default=None, help="comma-separated families to draw from (default: all 17)"
    )
    parser.add_argument(
        "--holdout-families",
        default=None,
        help="comma-separated families kept for test_ood only (default: 2 chosen with --seed)",
    )
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="OpenSCAD wall-clock limit per program, s"
    )
    parser.add_argument("--max-tries", type=positive_int, default=5, help="tries per part (derived seeds)")
    parser.add_argument("--chunk-size", type=positive_int, default=128, help="parts per resumable chunk")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def settings_from_args(args) -> BuildSettings:
    holdout = None
    if args.holdout_families is not None:
        holdout = tuple(sorted({f.strip() for f in args.holdout_families.split(",") if f.strip()}))
    families = {}
    if args.families is not None:
        families["families"] = tuple(sorted({f.strip() for f in args.families.split(",") if f.strip()}))
    return BuildSettings(
        n=args.n,
        out=args.out,
        seed=args.seed,
        workers=args.workers,
        size=args.size,
        holdout=holdout,
        timeout=args.timeout,
        max_tries=args.max_tries,
        chunk_size=args.chunk_size,
        **families,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = settings_from_args(args)
        import datasets

        datasets.disable_progress_bars()
        info = build(settings, progress=not args.quiet)
    except (UsageError, RendererUnavailable) as error:
        fail("corpus.build", str(error))
    except KeyboardInterrupt:
        print("corpus.build: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    print(summary(info))
    return 0


