"""Typed config dataclasses (a help string per field) and the YAML files that fill them.

Holds no logic beyond loading and validation.
"""
