"""vidpipe's use cases as plain functions with typed arguments: submit, run, work, status, jobs, nightly, demo,
track and retrack. The CLI (jobs/cli/) parses the command line and calls them; nothing here knows argparse.

Modules are imported by the use case that needs them, so `vidpipe track` never imports Ray.
"""
