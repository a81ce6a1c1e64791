"""A pyengine storage driver (rename me)."""
