"""Running OpenSCAD safely (code -> mesh or a typed failure), canonical cameras and
view images, the render cache, and the Ray ``RenderPool``.

Knows nothing about rewards or models.
"""
