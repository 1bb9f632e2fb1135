# Sourced by scripts: finds Python 3.13 (PATH, then pyenv) and prepares a virtualenv.
# shellcheck shell=bash

find_python313() {
    local candidate
    for candidate in python3.13 "$(command -v pyenv >/dev/null 2>&1 && pyenv root 2>/dev/null)/versions/3.13.0/bin/python3.13"; do
        [ -n "$candidate" ] || continue
        if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null; then
            command -v "$candidate"
            return 0
        fi
    done
    if command -v pyenv >/dev/null 2>&1; then
        local root version
        root=$(pyenv root)
        for version in "$root"/versions/3.13*; do
            if [ -x "$version/bin/python3" ]; then
                echo "$version/bin/python3"
                return 0
            fi
        done
    fi
    echo "error: Python 3.13 is required but was not found on PATH or through pyenv." >&2
    echo "       Install it (for example: pyenv install 3.13.0) and run this command again." >&2
    return 1
}

# ensure_venv DIR STAMP_INPUT PIP_ARGS...: (re)creates DIR when the pinned inputs changed.
ensure_venv() {
    local dir=$1 stamp_input=$2
    shift 2
    local python stamp want
    python=$(find_python313) || exit 1
    want=$(printf '%s\n' "$stamp_input" "$python" | sha256sum | cut -c1-16)
    stamp="$dir/.bacs-stamp"
    if [ -x "$dir/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        return 0
    fi
    echo ">> preparing $dir (Python: $python)" >&2
    [ -x "$dir/bin/python" ] || "$python" -m venv "$dir"
    "$dir/bin/python" -m pip install -qq --disable-pip-version-check --upgrade pip >&2
    # -qq: errors only (some machines list missing package folders as warnings, hundreds)
    "$dir/bin/python" -m pip install -qq --disable-pip-version-check "$@" >&2
    echo "$want" > "$stamp"
}

hash_of() { cat "$@" pyproject.toml | sha256sum | cut -c1-16; }

# .venv: the project's environment on Python 3.13: bacs_core and its pinned dependencies, lint
# and types, Home Assistant 2025.4.4 with its test harness, and what the demo runs. Shared by
# ./scripts/test and ./scripts/demo, so the second of them reuses what the first installed.
ensure_project_venv() {
    local reqs=(requirements/core.txt requirements/lint.txt requirements/ha2025.txt requirements/demo.txt)
    local args=() req
    for req in "${reqs[@]}"; do args+=(-r "$req"); done
    ensure_venv .venv "$(hash_of "${reqs[@]}")" "${args[@]}"
    install_project .venv
}

# install_project DIR: the project itself, editable, into DIR (again only when pyproject.toml
# changed); quiet unless it fails, then pip says why.
install_project() {
    local dir=$1 want
    want=$(sha256sum pyproject.toml | cut -c1-16)
    if [ "$(cat "$dir/.bacs-editable" 2>/dev/null)" != "$want" ]; then
        "$dir/bin/python" -m pip install --quiet --no-deps -e . >/dev/null 2>&1 ||
            "$dir/bin/python" -m pip install --no-deps -e . >&2
        echo "$want" > "$dir/.bacs-editable"
    fi
}

# ensure_debian_packages COMMAND:PACKAGE...: installs, through apt where it can, each package
# whose command is missing; says so (and where the log is) when it cannot.
ensure_debian_packages() {
    local pair missing=()
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
    done
    [ "${#missing[@]}" -gt 0 ] || return 0
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "   no apt-get here: ${missing[*]} not installed (their tests are skipped)" >&2
        return 0
    fi
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo -n"
    echo "== installing Debian's ${missing[*]}" >&2
    { $sudo apt-get update -q && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q \
        "${missing[@]}"; } >/tmp/bacs-apt.log 2>&1 ||
        echo "   could not install ${missing[*]} (see /tmp/bacs-apt.log)" >&2
}
