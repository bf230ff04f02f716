#!/usr/bin/env bash
# kubernetes-validate (Kubernetes API JSON schemas of every release, shipped inside the PyPI package: nothing is
# downloaded at validation time) in a venv under .stack/tools/kubernetes-validate, installed on first use and
# kept (a version change reinstalls). Used by scripts/helm-check:
#   scripts/tools/kubernetes-validate.sh --strict -k 1.33.0 rendered.yaml
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
KUBERNETES_VALIDATE_VERSION=1.37.0
venv="$root/.stack/tools/kubernetes-validate"
if [[ ! -x $venv/bin/kubernetes-validate || $(cat "$venv/.version" 2>/dev/null) != "$KUBERNETES_VALIDATE_VERSION" ]]; then
  echo "installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION into $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" >&2
  echo "$KUBERNETES_VALIDATE_VERSION" >"$venv/.version"
fi
exec "$venv/bin/kubernetes-validate" "$@"
