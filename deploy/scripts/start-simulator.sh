#!/bin/sh
# The JimmyAI API simulator, for trials only (its admin API has no auth). It accepts
# the bearer token "sim-token" unless --token-from-env, --token-file or --token is given.
set -o errexit -o nounset

exec clonequeue simulator --host "${ADDRESS:-0.0.0.0}" --port "${PORT:-8765}" "$@"
