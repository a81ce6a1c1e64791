"""Side-by-side benchmarks of pyengine against Docker, and the daemon harnesses they use.

The harnesses (:mod:`bench.dockerd`, :mod:`bench.pyengine_daemon`) are importable from tests too:
with the repository root on ``sys.path``, ``from bench.dockerd import private_dockerd``.
"""
