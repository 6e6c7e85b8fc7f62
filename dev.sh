#!/usr/bin/env bash
# The project's one entry point for people and CI.
#   ./dev.sh demo   set up, record a demo agent run, open the viewer
#   ./dev.sh test   set up, run the whole test suite
#   ./dev.sh setup  only set up (Debian packages, .venv, Python packages)
# Set-up is idempotent and quick when nothing changed (a stamp of pyproject.toml).
set -euo pipefail
cd "$(dirname "$0")"

PY=${PYTHON:-python3}
VENV="$PWD/.venv"
# Arize Phoenix (the OTLP receiver of tests/share/test_phoenix.py) pins many packages that clash
# with the viewer's web stack, so it lives in a venv of its own.
PHOENIX_VENV="$PWD/.venv-phoenix"
PHOENIX_VERSION="20.26.1"

log() { printf '\033[1;34m[stepsdk]\033[0m %s\n' "$*" >&2; }

install_debian_packages() {
    local missing=()
    [ -x /usr/lib/postgresql/15/bin/initdb ] || missing+=(postgresql-15)
    # pg_cron: the scheduled retention of supabase/migrations/20261130001400_* (tests run it for real)
    [ -f /usr/lib/postgresql/15/lib/pg_cron.so ] || missing+=(postgresql-15-cron)
    command -v chromium >/dev/null 2>&1 || missing+=(chromium)
    command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
    # `supabase db lint` (tests/schema/test_supabase_cli.py) needs plpgsql_check in the test database
    [ -f /usr/share/postgresql/15/extension/plpgsql_check.control ] || missing+=(postgresql-15-plpgsql-check)
    command -v npm >/dev/null 2>&1 || missing+=(npm)
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing Debian packages: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

install_python_packages() {
    [ -x "$VENV/bin/python" ] || { log "creating $VENV"; "$PY" -m venv "$VENV"; }
    local stamp
    stamp=$(cat pyproject.toml dev.sh | sha256sum | cut -c1-16)
    # Reinstall when pyproject/dev.sh changed, or when the editable install no longer finds the
    # packages as regular packages (e.g. it was made before a package folder had its __init__.py).
    if [ "$(cat "$VENV/.setup-stamp" 2>/dev/null)" != "$stamp" ] || ! (cd / && "$VENV/bin/python" -c \
        'import sys, stepsdk, stepsdk.viewer as viewer; sys.exit(stepsdk.__file__ is None or viewer.__file__ is None)' 2>/dev/null); then
        log "installing Python packages into $VENV"
        "$VENV/bin/pip" install -q --disable-pip-version-check --upgrade pip
        "$VENV/bin/pip" install -q --disable-pip-version-check -e '.[dev]'
        # Open-AutoGLM's phone-agent declares Python >= 3.12 but runs on 3.11 (see shared reference).
        "$VENV/bin/pip" install -q --disable-pip-version-check --ignore-requires-python 'phone-agent==0.1.1'
        echo "$stamp" > "$VENV/.setup-stamp"
    fi
}

# The real Supabase CLI (npm package `supabase`, pinned: newer releases may fetch a binary from
# GitHub at install time, which fails without general network access). Used by the tests to
# apply and lint the migrations with Supabase's own tool (`supabase db push|lint --db-url`).
SUPABASE_CLI_VERSION=2.117.0
SUPABASE_CLI_DIR="$PWD/.tools/supabase-cli"

install_supabase_cli() {
    local have
    have=$("$SUPABASE_CLI_DIR/node_modules/.bin/supabase" --version 2>/dev/null || true)
    [ "$have" = "$SUPABASE_CLI_VERSION" ] && return 0
    log "installing the Supabase CLI $SUPABASE_CLI_VERSION (npm) into $SUPABASE_CLI_DIR"
    mkdir -p "$SUPABASE_CLI_DIR"
    npm install --prefix "$SUPABASE_CLI_DIR" --no-audit --no-fund --loglevel=error \
        "supabase@$SUPABASE_CLI_VERSION" >/dev/null
}

install_phoenix() {
    [ -x "$PHOENIX_VENV/bin/python" ] || { log "creating $PHOENIX_VENV"; "$PY" -m venv "$PHOENIX_VENV"; }
    if [ "$(cat "$PHOENIX_VENV/.setup-stamp" 2>/dev/null)" != "$PHOENIX_VERSION" ] || [ ! -x "$PHOENIX_VENV/bin/phoenix" ]; then
        log "installing arize-phoenix==$PHOENIX_VERSION into $PHOENIX_VENV (about 2 min the first time)"
        "$PHOENIX_VENV/bin/pip" install -q --disable-pip-version-check "arize-phoenix==$PHOENIX_VERSION"
        echo "$PHOENIX_VERSION" > "$PHOENIX_VENV/.setup-stamp"
    fi
}

setup() {
    install_debian_packages
    install_python_packages
    install_supabase_cli
    install_phoenix
}

cmd=${1:-help}
shift || true
case "$cmd" in
    setup) setup ;;
    demo)  setup; exec "$VENV/bin/stepsdk" demo "$@" ;;
    test)  setup; exec "$VENV/bin/python" -m pytest "$@" ;;
    *) echo "usage: ./dev.sh demo | test | setup" >&2; exit 2 ;;
esac
