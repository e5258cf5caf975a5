"""Procedural OpenSCAD part families, the dataset build (``python -m corpus.build``),
and import of a user's folder of (image, .scad) pairs (``python -m corpus.import``).

Trains nothing.
"""
