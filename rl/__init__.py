"""Training and inference commands: ``rl.sft``, ``rl.ppo``, ``rl.eval``, ``rl.predict``, ``rl.demo``,
``rl.compare``, ``rl.curves``; PPO math as pure functions (``rl/core_algos.py``); rollouts.

Reimplements neither rendering nor scoring: it calls ``renderer`` and ``reward``. The README's
Layout section maps the modules.
"""
