#!/usr/bin/env bash
# Builds the dashboard: web/src -> web/dist, plus uPlot's browser build in web/dist/vendor.
# No bundler: the page is plain ES modules. Idempotent and fast; safe to run on every setup.
#   scripts/build-web.sh            build (or rebuild) web/dist
# The relay serves web/dist at / (found above its binary, or set PBS_WEB_ROOT).
set -euo pipefail
cd "$(dirname "$0")/.."
src=web/src
dist=web/dist
uplot=tools/node_modules/uplot/dist
for f in uPlot.iife.min.js uPlot.min.css; do
  if [ ! -f "$uplot/$f" ]; then
    echo "[build-web] $uplot/$f is missing: run scripts/setup.sh (it installs uPlot into tools/ from npm)" >&2
    exit 1
  fi
done
# Assemble next to dist and swap it in, so a relay serving dist never sees a half-built tree.
tmp=$(mktemp -d web/.dist-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cp -R "$src"/. "$tmp"/
mkdir -p "$tmp/vendor"
cp "$uplot/uPlot.iife.min.js" "$uplot/uPlot.min.css" "$tmp/vendor/"
cp tools/node_modules/uplot/LICENSE "$tmp/vendor/uPlot.LICENSE" 2>/dev/null || true
chmod -R a+rX "$tmp"
rm -rf "$dist.old"
[ -d "$dist" ] && mv "$dist" "$dist.old"
mv "$tmp" "$dist"
rm -rf "$dist.old"
trap - EXIT
echo "[build-web] built $dist ($(find "$dist" -type f | wc -l) files)" >&2
