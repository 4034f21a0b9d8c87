"""vidpipe's job plane: storage, the Redis work queue, result commits and the CLI."""

__version__ = "0.1.0"
