"""The RPC proxy: the application's calls served by an HTTP endpoint of its own."""
