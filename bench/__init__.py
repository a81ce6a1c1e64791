"""Side-by-side benchmarks of pyengine against Docker (see README.md).

The daemon harnesses they use live in :mod:`pyengine.testing` (``daemon``, ``dockerd``), shared with
the tests.
"""
