"""The command line of ``python -m corpus.build``: :class:`configs.corpus.BuildConfig` ->
:class:`corpus.build.BuildSettings` -> :func:`corpus.build.build`.

This module only parses, reports and exits (a bad option or value is one line on stderr, exit 2;
an interrupted build exits 130 and resumes when the same command runs again).
"""

from __future__ import annotations

import sys

from configs.cli import UsageError, fail, parse
from configs.corpus import BuildConfig
from corpus.build import BuildSettings, build
from corpus.build_info import summary
from renderer.errors import RendererUnavailable

PROG = "corpus.build"


def settings_of(config: BuildConfig) -> BuildSettings:
    """The build's input for ``config`` (family lists sorted, duplicates dropped)."""
    families = {"families": tuple(sorted(set(config.families)))} if config.families else {}
    holdout = None if config.holdout_families is None else tuple(sorted(set(config.holdout_families)))
    return BuildSettings(
        n=config.n,
        out=config.out,
        seed=config.seed,
        workers=config.worker_count,
        size=config.size,
        holdout=holdout,
        timeout=config.timeout,
        max_tries=config.max_tries,
        chunk_size=config.chunk_size,
        fractions=tuple(config.fractions),
        ray_address=config.ray_address,
        **families,
    )


def main(argv: list[str] | None = None) -> int:
    import corpus.build

    config = parse(PROG, corpus.build.__doc__.splitlines()[0], BuildConfig, argv)
    try:
        settings = settings_of(config)
        import datasets

        datasets.disable_progress_bars()
        info = build(settings, progress=not config.quiet)
    except (UsageError, RendererUnavailable) as error:
        fail(PROG, str(error))
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    print(summary(info))
    return 0
