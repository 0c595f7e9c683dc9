#!/usr/bin/env bash
# The whole market on this machine, in one command:
#   scripts/devnet.sh                       Redis, PostgreSQL, anvil, contracts, 2 relays, the proposer client,
#                                           3 demo builders and the dashboard; Ctrl-C stops everything
#   scripts/devnet.sh --slots 20            run 20 slots, print a summary, check the market, exit (0 ok, 3 misbehaved)
#   scripts/devnet.sh --help                every option (they are `pbs devnet` options)
# Installs what is missing first (scripts/setup.sh), builds the dashboard and the `pbs` binary, then runs
# `pbs devnet` with the arguments given here.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/tools/bin:$PATH"
scripts/build-web.sh >/dev/null 2>&1 || echo "[devnet] the dashboard could not be built (scripts/build-web.sh); the APIs still work" >&2
dotnet build src/PbsMarket.Cli --nologo -clp:ErrorsOnly -v:quiet >/dev/null \
  || { dotnet build src/PbsMarket.Cli --nologo -clp:ErrorsOnly -v:quiet; exit 1; }
exec src/PbsMarket.Cli/bin/Debug/net10.0/pbs devnet "$@"
