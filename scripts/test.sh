#!/usr/bin/env bash
# Runs every test of durl: formatting, vet, all Go tests (the race detector
# on, the nginx interop tests included; they install nginx with apt-get
# when it is missing), and a smoke run of the benchmark suite.
set -euo pipefail
cd "$(dirname "$0")/.."

unformatted=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change these files (run gofmt -w):" >&2
  echo "$unformatted" >&2
  exit 1
fi
go vet ./...
go test -race -count=1 -timeout 8m ./...
bench/run --quick
