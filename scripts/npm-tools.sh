#!/usr/bin/env bash
# Installs the npm tools the API interop tests run into .cache/ (git-ignored):
#   .cache/psc       @ipfs-shipyard/pinning-service-compliance (the spec is api/pinsvc/testdata/ipfs-pinning-service-v1.0.0.yaml)
#   .cache/jsclient  @nftstorage/ipfs-cluster (IPFS Cluster JS client)
# Idempotent: a package already installed at the right version is left alone.
# The compliance suite's spec location is patched to the local spec file on
# every run (the suite would otherwise download it and silently drop checks).
# Needs node and npm on PATH; without them it says so and exits 0 unless CI=true.
# The API tests run it themselves (api/internal/npmtest.Ensure), so the
# test command needs no extra step; running it by hand first is fine too.
# Usage: ./scripts/npm-tools.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CACHE=$ROOT/.cache

PSC_PKG=@ipfs-shipyard/pinning-service-compliance
PSC_VERSION=1.8.1
JSCLIENT_PKG=@nftstorage/ipfs-cluster
JSCLIENT_VERSION=5.0.1
SPEC=$ROOT/api/pinsvc/testdata/ipfs-pinning-service-v1.0.0.yaml

mkdir -p "$CACHE"
# Several test binaries (api/rest, api/pinsvc) may run this at once under
# `go test ./...`: one installs, the others wait for it.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$CACHE/.npm-tools.lock"
  flock 9
fi

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "npm-tools: node and npm are needed on PATH" >&2
  if [ "${CI:-}" = "true" ]; then exit 1; fi
  exit 0
fi

# installed_version DIR PKG prints the version installed in DIR, or nothing.
installed_version() {
  local pj="$1/node_modules/$2/package.json"
  [ -f "$pj" ] || return 0
  node -e 'try{console.log(require(process.argv[1]).version)}catch(e){}' "$pj"
}

# install DIR PKG VERSION installs PKG@VERSION into DIR unless already there.
install() {
  local dir=$1 pkg=$2 version=$3
  if [ "$(installed_version "$dir" "$pkg")" = "$version" ]; then
    return 0
  fi
  echo "npm-tools: installing $pkg@$version into ${dir#$ROOT/}"
  mkdir -p "$dir"
  if [ ! -f "$dir/package.json" ]; then
    (cd "$dir" && npm init -y >/dev/null)
  fi
  (cd "$dir" && npm install --ignore-scripts --no-audit --no-fund --loglevel=error "$pkg@$version")
  [ "$(installed_version "$dir" "$pkg")" = "$version" ] || {
    echo "npm-tools: $pkg@$version did not install" >&2
    exit 1
  }
}

install "$CACHE/psc" "$PSC_PKG" "$PSC_VERSION"
install "$CACHE/jsclient" "$JSCLIENT_PKG" "$JSCLIENT_VERSION"

# Point the compliance suite at the local spec (idempotent). Without the
# file (outside CI) the suite still installs; the Go test then skips.
CONSTANTS=$CACHE/psc/node_modules/$PSC_PKG/dist/src/utils/constants.js
if [ -f "$SPEC" ]; then
  SPEC=$(realpath "$SPEC")
  sed -i "s#^const specLocation = .*#const specLocation = '$SPEC';#" "$CONSTANTS"
elif [ "${CI:-}" = "true" ]; then
  echo "npm-tools: spec file $SPEC is missing" >&2
  exit 1
fi
