#!/usr/bin/env bash
# promtool (Prometheus rule and config checker), built from the Go module proxy with the machine's Go into
# .stack/tools/promtool-<version>/ on first use and kept. Used by the "monitoring rules" phase of scripts/test:
#   scripts/tools/promtool.sh check rules deploy/monitoring/rules/*.yaml
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# Prometheus 3.x publishes its Go module as v0.3xx.y (v0.316.0 = Prometheus 3.6.x line).
PROMTOOL_VERSION=v0.316.0
dir="$root/.stack/tools/promtool-$PROMTOOL_VERSION"
if [[ ! -x $dir/promtool ]]; then
  go=$(command -v go || echo /usr/local/go/bin/go)
  [[ -x $go ]] || { echo "promtool.sh: Go is needed to build promtool (apt-get install golang, or /usr/local/go)" >&2; exit 1; }
  echo "building promtool $PROMTOOL_VERSION into $dir (first use only)" >&2
  mkdir -p "$dir"
  # remove_all_sd: leave out the service-discovery plugins (cloud SDKs, Kubernetes client): promtool check rules
  # does not need them, and they are most of the build time.
  GOBIN="$dir" GOFLAGS=-mod=mod CGO_ENABLED=0 "$go" install -tags remove_all_sd "github.com/prometheus/prometheus/cmd/promtool@$PROMTOOL_VERSION" >&2
fi
exec "$dir/promtool" "$@"
