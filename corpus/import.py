"""``python -m corpus.import FOLDER --out OUT``: import a folder of .scad files as a corpus dataset.

``import`` is a Python keyword, so the code lives in :mod:`corpus.importer`; this file
only makes the command line work::

    python -m corpus.import my_parts/ --out runs/my_parts
"""

import sys

from corpus.importer import main

if __name__ == "__main__":
    sys.exit(main())
