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
    "$dir/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
    "$dir/bin/python" -m pip install --quiet --disable-pip-version-check "$@" >&2
    echo "$want" > "$stamp"
}
