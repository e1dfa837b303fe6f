# Sourced by the build scripts: sets GO to a Go toolchain (GO from the environment, else `go`
# on PATH, else /usr/local/go/bin/go), or dies naming the minimum version ($1) the caller needs.
if [ -z "${GO:-}" ]; then
  if command -v go >/dev/null 2>&1; then
    GO=go
  elif [ -x /usr/local/go/bin/go ]; then
    GO=/usr/local/go/bin/go
  else
    die "no Go toolchain: install Go (>= $1) or set GO=/path/to/go"
  fi
fi
