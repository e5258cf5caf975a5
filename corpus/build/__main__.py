"""``python -m corpus.build``: the command line lives in :mod:`corpus.build_cli`, which imports
this package, so the package is loaded once and imports point one way."""

import sys

from corpus.build_cli import main

sys.exit(main())
