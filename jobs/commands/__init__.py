"""One module per `vidpipe` subcommand of the job plane (see jobs/cli.py)."""
