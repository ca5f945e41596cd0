"""Shared pieces of pushgate: settings, wire shapes, events, the Redis backend and the CLI."""
