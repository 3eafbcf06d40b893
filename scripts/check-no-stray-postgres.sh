#!/usr/bin/env bash
# Fails when a PostgreSQL server started by the test harness is still running.
stray=$(pgrep -af 'postgres.*pglmon-pgtest' || true)
if [ -n "$stray" ]; then
  echo "stray PostgreSQL servers left by the tests:" >&2
  echo "$stray" >&2
  exit 1
fi
echo "no stray PostgreSQL servers"
