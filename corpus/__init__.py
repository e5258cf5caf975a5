"""Procedural OpenSCAD parts and the datasets made from them. Trains nothing.

- :mod:`corpus.families`: the part families (``generate(family, seed) -> Part``).
- :mod:`corpus.build`: ``python -m corpus.build --n 2000 --out runs/corpus2k`` renders
  parts into a split Hugging Face dataset (parquet), resumable and deterministic.
- :mod:`corpus.importer`: ``python -m corpus.import my_parts/ --out runs/my_parts`` turns a
  user's folder of ``.scad`` (+ ``.png``) files into the same format.
- :mod:`corpus.stats`: ``python -m corpus.stats runs/corpus2k`` prints a dataset card and
  draws a contact sheet.
- :mod:`corpus.dataset`: the columns, :func:`corpus.dataset.load` and ``load_mesh``.
- :mod:`corpus.splits`: train / val / test / test_ood without leakage (pure functions).
"""
