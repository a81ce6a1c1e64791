"""Conformance suites and fixtures that driver authors import in their own tests."""

try:
    import pytest
except ImportError:  # only the suites need pytest; the package itself stays importable
    pass
else:
    # plain asserts in the suites should explain themselves like asserts in test files
    pytest.register_assert_rewrite("pyengine.testing.storage_suite")
