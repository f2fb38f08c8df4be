#!/usr/bin/env bash
# fake-gcs-server, the Cloud Storage emulator the gcs store's contract tests run on.
#
#   scripts/fake-gcs.sh install              install the pinned version into .tools/bin/ (git-ignored)
#   scripts/fake-gcs.sh path                 print the binary's path; exit 1 if the pinned version is missing
#   scripts/fake-gcs.sh start [port] [dir]   start it in the background (memory backend), wait until it answers;
#                                            pid and log go to dir (default .tools/run); FAKE_GCS_BACKEND=filesystem
#                                            keeps objects in dir/data instead
#   scripts/fake-gcs.sh stop [dir]           stop the one started with that dir
#
# Pinned to v1.56.1, not v1.52.2: v1.52.2 ignores both ifGenerationMatch and generation on delete
# (a conditional delete deletes anyway) and has no list pagination. v1.56.1 still ignores
# ifGenerationMatch on delete but honours a pinned `generation`, which the adapter sends as well.
set -euo pipefail

VERSION="${FAKE_GCS_VERSION:-v1.56.1}"
MODULE="github.com/fsouza/fake-gcs-server"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN_DIR="$ROOT/.tools/bin"
BIN="$BIN_DIR/fake-gcs-server"
STAMP="$BIN.version"

say() { printf 'fake-gcs: %s\n' "$*" >&2; }

installed() { [[ -x "$BIN" && -f "$STAMP" && "$(cat "$STAMP")" == "$VERSION" ]]; }

# The version a Go-built binary was built from, or nothing.
built_version() { go version -m "$1" 2>/dev/null | awk -v m="$MODULE" '$1 == "mod" && $2 == m { print $3 }'; }

install() {
  if installed; then
    say "$VERSION already installed at $BIN"
    return 0
  fi
  if ! command -v go >/dev/null 2>&1; then
    say "CANNOT INSTALL fake-gcs-server $VERSION: no Go toolchain on PATH."
    say "Install Go (https://go.dev/dl, or apt-get install golang-go) and run: scripts/fake-gcs.sh install"
    say "Without it the gcs store tests are skipped locally and fail in CI."
    return 1
  fi
  mkdir -p "$BIN_DIR"
  # Build into a private folder and move the result in, so two installs at once never leave a
  # half-written binary behind.
  local tmp
  tmp="$(mktemp -d "$BIN_DIR/.install.XXXXXX")"
  local cached
  cached="$(go env GOPATH 2>/dev/null)/bin/fake-gcs-server"
  if [[ -x "$cached" && "$(built_version "$cached")" == "$VERSION" ]]; then
    say "copying $VERSION from $cached"
    cp "$cached" "$tmp/fake-gcs-server"
  else
    say "installing $MODULE@$VERSION (the first time downloads many modules: 5-10 minutes)"
    if ! GOBIN="$tmp" GOFLAGS="${GOFLAGS:-} -buildvcs=false" go install "$MODULE@$VERSION" >&2; then
      rm -rf "$tmp"
      say "CANNOT INSTALL fake-gcs-server $VERSION: \`go install $MODULE@$VERSION\` failed (see above)."
      return 1
    fi
  fi
  mv -f "$tmp/fake-gcs-server" "$BIN"
  rm -rf "$tmp"
  printf '%s\n' "$VERSION" >"$STAMP.tmp" && mv -f "$STAMP.tmp" "$STAMP"
  say "installed $VERSION at $BIN"
}

answers() {
  local port="$1"
  if command -v curl >/dev/null 2>&1; then
    curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$port/storage/v1/b"
  else
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
  fi
}

start() {
  local port="${1:-4443}" dir="${2:-$ROOT/.tools/run}"
  installed || { say "fake-gcs-server $VERSION is not installed: run scripts/fake-gcs.sh install"; return 1; }
  mkdir -p "$dir"
  local pidfile="$dir/fake-gcs-server.pid"
  if [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    say "already running (pid $(cat "$pidfile")); stop it first: scripts/fake-gcs.sh stop $dir"
    return 1
  fi
  local backend=(-backend memory)
  [[ "${FAKE_GCS_BACKEND:-memory}" == filesystem ]] && backend=(-backend filesystem -filesystem-root "$dir/data")
  nohup "$BIN" -scheme http -host 127.0.0.1 -port "$port" -public-host "127.0.0.1:$port" \
    "${backend[@]}" -log-level warn >"$dir/fake-gcs-server.log" 2>&1 &
  local pid=$!
  echo "$pid" >"$pidfile"
  for _ in $(seq 1 100); do
    if answers "$port"; then
      say "listening on http://127.0.0.1:$port (pid $pid); use STORAGE_EMULATOR_HOST=http://127.0.0.1:$port"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      say "exited at start; its log:"
      cat "$dir/fake-gcs-server.log" >&2
      rm -f "$pidfile"
      return 1
    fi
    sleep 0.1
  done
  say "no answer on port $port after 10 s; stopping it"
  kill "$pid" 2>/dev/null || true
  rm -f "$pidfile"
  return 1
}

stop() {
  local dir="${1:-$ROOT/.tools/run}"
  local pidfile="$dir/fake-gcs-server.pid"
  if [[ ! -f "$pidfile" ]]; then
    say "not running (no $pidfile)"
    return 0
  fi
  local pid
  pid="$(cat "$pidfile")"
  if kill "$pid" 2>/dev/null; then
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    say "stopped pid $pid"
  fi
  rm -f "$pidfile"
}

case "${1:-}" in
  install) install ;;
  path) installed && echo "$BIN" ;;
  start) shift; start "$@" ;;
  stop) shift; stop "$@" ;;
  *)
    sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
