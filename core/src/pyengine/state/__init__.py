"""Durable state under the data root: metadata in SQLite, content in a digest-addressed blob store."""
