"""Pure scoring functions (arrays in, numbers out): SSIM of views, chamfer distance,
IoU, the composite score, and the reward-inspection report (``python -m reward.report``).

Runs no OpenSCAD and no Ray, and touches no files except in ``report.py``.
"""
