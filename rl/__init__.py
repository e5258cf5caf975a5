"""Entry points ``rl.sft``, ``rl.ppo``, ``rl.eval``, ``rl.predict``; PPO math as pure
functions (``rl/core_algos.py``); rollouts.

Reimplements neither rendering nor scoring: it calls ``renderer`` and ``reward``.
"""
