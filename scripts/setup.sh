#!/usr/bin/env bash
# Installs what PbsMarket needs and does nothing when everything is already there.
#   - Debian packages: redis-server, postgresql, chromium (apt-get, as root)
#   - tools/ from npm with the committed lock file: anvil, forge, cast, solc (solcjs),
#     OpenZeppelin contracts, ethers and @openzeppelin/merkle-tree (interop vectors), uPlot
#   - tools/bin: links to those binaries, and the solc shim that lets forge use solcjs offline
#   - the NuGet restore of PbsMarket.sln
# On a machine that is not Debian, or not as root, it says what to install by hand and stops.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
say() { printf '[setup] %s\n' "$*" >&2; }

need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || need_apt+=(postgresql)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs npm)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing ${need_apt[*]} with apt-get (about a minute)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
    # Debian starts the packaged services; the project runs its own on free ports instead.
    for svc in redis-server postgresql; do
      if command -v service >/dev/null 2>&1; then service "$svc" stop >/dev/null 2>&1 || true; fi
    done
  else
    say "missing: ${need_apt[*]}. Install them with your package manager (Debian: apt-get install -y ${need_apt[*]}), then run this again."
    exit 1
  fi
fi

if ! command -v dotnet >/dev/null 2>&1; then
  say "the .NET 10 SDK is missing: install it (https://dot.net), then run this again."
  exit 1
fi

# npm tools, reinstalled only when the lock file changed.
stamp=tools/node_modules/.pbs-lock-stamp
if [ ! -f "$stamp" ] || ! cmp -s tools/package-lock.json "$stamp"; then
  say "installing tools/ from npm (anvil, forge, solc, OpenZeppelin, ethers)"
  (cd tools && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  cp tools/package-lock.json "$stamp"
fi
mkdir -p tools/bin
for tool in anvil forge cast; do
  ln -sf "../node_modules/@foundry-rs/$tool-linux-amd64/bin/$tool" "tools/bin/$tool"
done
ln -sf ../solc-shim.sh tools/bin/solc
chmod +x tools/solc-shim.sh 2>/dev/null || true

# The dashboard: web/src -> web/dist (+ uPlot), served by the relay at /.
scripts/build-web.sh

# NuGet restore, skipped when nothing that restore reads has changed.
rstamp=obj/.pbs-restore-stamp
mkdir -p obj
sig=$( (cat Directory.Packages.props Directory.Build.props global.json; find src tests -name '*.csproj' -print0 | sort -z | xargs -0 cat) | sha256sum | cut -d' ' -f1)
if [ ! -f "$rstamp" ] || [ "$(cat "$rstamp")" != "$sig" ]; then
  say "restoring NuGet packages"
  dotnet restore PbsMarket.sln --verbosity quiet >/dev/null
  echo "$sig" > "$rstamp"
fi
