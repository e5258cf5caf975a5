"""The ``Policy`` interface, the tiny from-config image-to-code model and its SCAD
tokenizer, the pretrained-VLM + LoRA backend, and checkpoints.

Knows nothing about OpenSCAD.
"""
