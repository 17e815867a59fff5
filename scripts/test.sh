#!/usr/bin/env bash
# Runs every test of durl: formatting, vet, a smoke run of the benchmark
# suite (which installs nginx, curl, wget and aria2 with apt-get when they
# are missing), then all Go tests with the race detector, the nginx interop
# tests included.
set -euo pipefail
cd "$(dirname "$0")/.."

unformatted=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change these files (run gofmt -w):" >&2
  echo "$unformatted" >&2
  exit 1
fi
go vet ./...
bench/run --quick --require-durl --out -
go test -race -count=1 -timeout 8m ./...
