#!/usr/bin/env bash
# helm v4, built from the Go module proxy with the machine's Go into .stack/tools/helm-<version>/ on first use
# and kept. Used by the "helm chart" phase of scripts/test (scripts/helm-check) and by hand:
#   scripts/tools/helm.sh template votestream deploy/helm/votestream
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HELM_VERSION=v4.3.2
dir="$root/.stack/tools/helm-$HELM_VERSION"
if [[ ! -x $dir/helm ]]; then
  go=$(command -v go || echo /usr/local/go/bin/go)
  [[ -x $go ]] || { echo "helm.sh: Go is needed to build helm (apt-get install golang, or /usr/local/go)" >&2; exit 1; }
  echo "building helm $HELM_VERSION into $dir (first use only)" >&2
  mkdir -p "$dir.tmp"
  GOBIN="$dir.tmp" GOFLAGS=-mod=mod CGO_ENABLED=0 "$go" install "helm.sh/helm/v4/cmd/helm@$HELM_VERSION" >&2
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
fi
# No repositories, plugins or cache outside the tool directory: the chart has no dependencies.
export HELM_CACHE_HOME="$dir/cache" HELM_CONFIG_HOME="$dir/config" HELM_DATA_HOME="$dir/data"
exec "$dir/helm" "$@"
