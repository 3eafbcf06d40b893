#!/usr/bin/env bash
# Installs what pglmon's tests and demo need on a Debian machine (run as root):
# PostgreSQL 15 with pglogical, promtool (prometheus) and systemd-analyze.
set -euo pipefail
need=()
[ -f /usr/lib/postgresql/15/lib/pglogical.so ] || need+=(postgresql-15-pglogical)
command -v promtool >/dev/null || need+=(prometheus)
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v make >/dev/null || need+=(make)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: run as root, or install: ${need[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # The prometheus package would start a server; policy-rc.d keeps it stopped.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
fi
# The Debian package creates a 15/main cluster; pglmon's tests never use it.
go mod download
