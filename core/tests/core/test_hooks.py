"""Lifecycle hooks: pre_ hooks may veto, post_ hooks cannot (their errors are logged)."""

from __future__ import annotations

import logging

import pytest
from pyengine.errors import Conflict
from pyengine.hooks import HookCaller
from pyengine.hookspecs import hookimpl


class Refuser:
    @hookimpl
    def pyengine_container_pre_remove(self, container, force):
        if not force:
            raise Conflict("protected by policy")


class BrokenObserver:
    @hookimpl
    def pyengine_container_post_remove(self, container):
        raise RuntimeError("observer bug")


def test_pre_hook_vetoes():
    hooks = HookCaller()
    hooks.register(Refuser(), name="refuser")
    with pytest.raises(Conflict, match="protected by policy"):
        hooks.call("pyengine_container_pre_remove", container=object(), force=False)
    hooks.call("pyengine_container_pre_remove", container=object(), force=True)


def test_post_hook_errors_are_logged_not_raised(caplog):
    hooks = HookCaller()
    hooks.register(BrokenObserver(), name="broken")
    with caplog.at_level(logging.ERROR):
        assert hooks.call("pyengine_container_post_remove", container=object()) == []
    assert "observer bug" in caplog.text


def test_names_list_plugins_and_their_hooks():
    hooks = HookCaller()
    hooks.register(Refuser(), name="refuser")
    assert hooks.names() == ["refuser: pyengine_container_pre_remove"]
