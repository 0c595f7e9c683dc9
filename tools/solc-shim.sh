#!/usr/bin/env bash
# Answers like a native solc so that forge can build offline with solcjs from npm:
# `--version` in solc's format, and `--standard-json` through solc's JS API. Output goes through a
# temp file because solcjs cuts piped output at 64 KiB.
set -euo pipefail
here=$(cd "$(dirname "$(readlink -f "$0")")" && pwd)
case " $* " in
  *" --version "*)
    ver=$(node -e "console.log(require('$here/node_modules/solc/package.json').version)")
    long=$(node -e "console.log(require('$here/node_modules/solc').version())")
    printf 'solc, the solidity compiler commandline interface\nVersion: %s\n' "${long%%.Emscripten*}.Linux.g++"
    ;;
  *" --standard-json "*)
    out=$(mktemp)
    trap 'rm -f "$out"' EXIT
    node "$here/solc-standard-json.cjs" "$out"
    cat "$out"
    ;;
  *)
    echo "solc-shim: only --version and --standard-json are supported" >&2
    exit 2
    ;;
esac
