"""Pydantic models of pyengine's objects: state and specs only, no I/O.

Field names follow Docker's API (PascalCase) so that a request body validates straight into a model and
a model dumps straight into Docker's JSON shapes.
"""
