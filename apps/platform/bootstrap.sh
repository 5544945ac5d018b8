#!/usr/bin/env bash
# Installs what the platform needs on a fresh Debian 12 machine, and nothing twice.
#
#   bootstrap.sh run    system services + Python environment
#   bootstrap.sh test   the same, plus what the test suite drives (Chromium, Node, GDAL)
#
# As root, missing Debian packages are installed with apt-get; otherwise the script stops and
# prints the exact command to run. Package installs never start the distribution's own
# PostgreSQL or Mosquitto services: the platform runs private ones on its own ports.
set -euo pipefail

purpose="${1:-run}"
root_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="${CHANGZHI_VENV:-$root_dir/.venv}"

need_pkgs=()
have_file() { [ -e "$1" ]; }

have_file /usr/lib/postgresql/15/bin/postgres || need_pkgs+=(postgresql-15)
have_file /usr/share/postgresql/15/extension/postgis.control || need_pkgs+=(postgresql-15-postgis-3)
have_file /usr/share/postgresql/15/extension/pgrouting.control || need_pkgs+=(postgresql-15-pgrouting)
command -v mosquitto >/dev/null 2>&1 || have_file /usr/sbin/mosquitto || need_pkgs+=(mosquitto)
command -v mosquitto_pub >/dev/null 2>&1 || need_pkgs+=(mosquitto-clients)
# The console's Chinese labels are drawn with the system's CJK font.
have_file /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc || need_pkgs+=(fonts-noto-cjk)
if [ "$purpose" = "test" ]; then
    command -v chromium >/dev/null 2>&1 || need_pkgs+=(chromium)
    command -v npm >/dev/null 2>&1 || need_pkgs+=(nodejs npm)
    # GDAL's command-line tools: the tests read the OGC APIs with ogrinfo/ogr2ogr as a client.
    command -v ogrinfo >/dev/null 2>&1 || need_pkgs+=(gdal-bin)
fi

pick_python() {
    for candidate in python3.13 python3.12 python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

python_bin="$(pick_python || true)"
if [ -z "$python_bin" ]; then
    need_pkgs+=(python3 python3-venv python3-dev)
elif [ ! -x "$venv/bin/python" ] && ! "$python_bin" -c 'import ensurepip, venv' 2>/dev/null; then
    need_pkgs+=(python3-venv)
fi

if [ "${#need_pkgs[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "changzhi: missing system packages; run: sudo apt-get install -y ${need_pkgs[*]}" >&2
        exit 1
    fi
    echo "changzhi: installing ${need_pkgs[*]} (apt-get)" >&2
    bash "$root_dir/apps/platform/apt-install.sh" "${need_pkgs[@]}"
    python_bin="$(pick_python)"
fi

# The Python environment, reinstalled only when pyproject.toml changes.
stamp="$venv/.changzhi-$(sha256sum "$root_dir/pyproject.toml" | cut -c1-16)"
if [ ! -e "$stamp" ]; then
    [ -x "$venv/bin/python" ] || "$python_bin" -m venv "$venv"
    echo "changzhi: installing Python dependencies into $venv" >&2
    "$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -e "$root_dir[dev]"
    rm -f "$venv"/.changzhi-*
    touch "$stamp"
fi

if [ "$purpose" = "test" ] && [ -f "$root_dir/web/console/package.json" ]; then
    # Playwright's library only: it drives the system Chromium, it downloads no browser.
    if [ ! -d "$root_dir/web/console/node_modules/playwright-core" ]; then
        (cd "$root_dir/web/console" && npm install --no-audit --no-fund --silent >/dev/null)
    fi
fi
