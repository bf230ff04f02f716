#!/usr/bin/env bash
# checkov (terraform static analysis) from PyPI, in a venv under .stack/tools/checkov, installed on first use
# and kept (a version change reinstalls). Used by the "checkov" phase of scripts/test and by hand:
#   scripts/tools/checkov.sh -d terraform --config-file terraform/.checkov.yaml
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CHECKOV_VERSION=3.3.30
venv="$root/.stack/tools/checkov"
if [[ ! -x $venv/bin/checkov || $(cat "$venv/.version" 2>/dev/null) != "$CHECKOV_VERSION" ]]; then
  echo "installing checkov $CHECKOV_VERSION into $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "checkov==$CHECKOV_VERSION" >&2
  echo "$CHECKOV_VERSION" >"$venv/.version"
fi
exec "$venv/bin/checkov" "$@"
