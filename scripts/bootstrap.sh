#!/usr/bin/env bash
# Create .venv if missing and install the requirements into it, once per requirements content.
#
#   scripts/bootstrap.sh run   runtime requirements (requirements.txt)
#   scripts/bootstrap.sh dev   runtime + development requirements (requirements-dev.txt)
#
# A stamp file .venv/.installed-<kind>-<hash of the requirements files> records a finished
# install: pip runs again only when a requirements file changed. PYTHON picks the interpreter
# that creates the venv (default python3, must be 3.11 or newer).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

kind="${1:-dev}"
case "$kind" in
    run) files=(requirements.txt) ;;
    dev) files=(requirements.txt requirements-dev.txt) ;;
    *) echo "usage: $0 run|dev" >&2; exit 2 ;;
esac

venv=.venv
python="${PYTHON:-python3}"

req_hash() { cat "$@" | sha256sum | cut -c1-16; }

stamp="$venv/.installed-$kind-$(req_hash "${files[@]}")"
if [[ -x "$venv/bin/python" && -e "$stamp" ]]; then
    exit 0
fi

# Two instances started at once from one checkout must not run pip side by side.
if command -v flock >/dev/null; then
    exec 9<"${BASH_SOURCE[0]}"
    flock 9
    if [[ -x "$venv/bin/python" && -e "$stamp" ]]; then
        exit 0
    fi
fi

if [[ ! -x "$venv/bin/python" ]]; then
    if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        echo "error: $python is missing or older than Python 3.11 (set PYTHON=/path/to/python3.11)" >&2
        exit 1
    fi
    echo "Creating $venv with $("$python" --version)"
    "$python" -m venv "$venv"
fi

echo "Installing ${files[-1]} into $venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "${files[-1]}"

rm -f "$venv/.installed-$kind-"*
touch "$stamp"
if [[ "$kind" == dev ]]; then
    # The development requirements include the runtime ones.
    rm -f "$venv/.installed-run-"*
    touch "$venv/.installed-run-$(req_hash requirements.txt)"
fi
