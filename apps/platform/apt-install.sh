#!/usr/bin/env bash
# Installs Debian packages for the platform without starting the distribution's services.
#
#   apt-install.sh PACKAGE...
#
# Package scripts are kept from starting the default PostgreSQL and Mosquitto (a policy-rc.d
# that refuses, created only if the machine has none, removed afterwards) and from creating
# the default PostgreSQL cluster on port 5432: this machine may already use those ports.
# apt's output is kept in a log and shown only when it fails: a quiet success, a loud failure.
# CHANGZHI_POLICY_RC_D and CHANGZHI_CREATECLUSTER_CONF move the two files (for the tests).
set -euo pipefail

policy="${CHANGZHI_POLICY_RC_D:-/usr/sbin/policy-rc.d}"
createcluster="${CHANGZHI_CREATECLUSTER_CONF:-/etc/postgresql-common/createcluster.conf}"

policy_created=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
    policy_created=1
fi
if [ ! -e "$createcluster" ]; then
    mkdir -p "$(dirname "$createcluster")"
    echo "create_main_cluster = false" >"$createcluster"
fi
apt_log="$(mktemp)"
# An if, not `[ ] && rm`: under `set -e` the latter returns 1 when policy-rc.d pre-existed,
# which failed the whole bootstrap right after a successful install.
cleanup() {
    if [ "$policy_created" = 1 ]; then rm -f "$policy"; fi
    rm -f "$apt_log"
    return 0
}
trap cleanup EXIT
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "$@"; } >"$apt_log" 2>&1; then
    echo "changzhi: apt-get failed installing $*:" >&2
    cat "$apt_log" >&2
    exit 1
fi
