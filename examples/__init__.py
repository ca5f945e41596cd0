"""Runnable examples of the application's own calls (``rpc``), one command each: see README."""
