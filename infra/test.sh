#!/usr/bin/env bash
# The README's test command: set up .venv (with dev + gpu extras) and run every check CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash infra/setup-venv.sh dev
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 RAY_AUTH_MODE=disabled RAY_USAGE_STATS_ENABLED=0
echo "== ruff"; .venv/bin/ruff check .
echo "== mypy"; .venv/bin/mypy workers jobs
echo "== pytest"
set +e
# A whole-run limit as well: a hang after the last test (a child process that never exits) is out of
# pytest-timeout's reach. 70 minutes is over three times a 2-core run.
timeout --kill-after=60 4200 .venv/bin/python -m pytest "$@"
rc=$?
set -e
[ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] && { echo "pytest ran past its 70-minute limit and was stopped" >&2; exit 1; }
# pytest exits 5 when it collected no tests: that is a failure here, not a pass.
[ "$rc" -eq 5 ] && { echo "pytest collected no tests" >&2; exit 1; }
exit "$rc"
