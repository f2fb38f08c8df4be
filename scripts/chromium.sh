#!/usr/bin/env bash
# Headless Chromium for the dashboard's browser test (test/e2e/dashboard.test.ts), from Debian's
# `chromium` package; the test drives it with playwright-core, which downloads no browser.
#
#   scripts/chromium.sh install   install it unless it is there (root, or sudo without a password)
#   scripts/chromium.sh path      print the binary's path; exit 1 when it is missing
#
# Another apt-get may hold the dpkg lock (an image build, unattended-upgrades, an install started
# by hand): then this waits for it, up to CHROMIUM_WAIT_S seconds (default 300), and checks again
# before starting its own, instead of failing on the lock or installing twice.
set -euo pipefail

BIN="${CHROMIUM_BIN:-/usr/bin/chromium}"
WAIT_S="${CHROMIUM_WAIT_S:-300}"

say() { printf 'chromium: %s\n' "$*" >&2; }

installed() { [[ -x "$BIN" ]]; }

apt_busy() {
  # fuser is not everywhere; a running apt-get or dpkg is the same signal.
  pgrep -x apt-get >/dev/null 2>&1 || pgrep -x apt >/dev/null 2>&1 || pgrep -x dpkg >/dev/null 2>&1
}

wait_for_apt() {
  local waited=0
  while apt_busy; do
    if ((waited == 0)); then say "another apt-get or dpkg is running; waiting for it (up to ${WAIT_S}s)"; fi
    if ((waited >= WAIT_S)); then
      say "CANNOT INSTALL chromium: apt is still busy after ${WAIT_S}s. Try again when it is done: scripts/chromium.sh install"
      return 1
    fi
    sleep 5
    waited=$((waited + 5))
  done
}

install() {
  if installed; then
    say "already installed: $BIN"
    return 0
  fi
  local sudo=()
  if [[ "$(id -u)" != 0 ]]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      sudo=(sudo -n)
    else
      say "CANNOT INSTALL chromium: installing a Debian package needs root (or sudo without a password)."
      say "Run as root: apt-get update && apt-get install -y chromium"
      return 1
    fi
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    say "CANNOT INSTALL chromium: no apt-get here (not Debian or Ubuntu). Install Chromium and set CHROMIUM_BIN to it."
    return 1
  fi
  wait_for_apt
  # The install we waited for may have been this one.
  if installed; then
    say "installed meanwhile: $BIN"
    return 0
  fi
  say "installing Debian's chromium package (a few hundred MB)"
  if ! "${sudo[@]}" apt-get update -qq || ! DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends chromium; then
    say "CANNOT INSTALL chromium: apt-get failed (see above). A dpkg lock error means another apt is running: try again when it ends."
    return 1
  fi
  installed || { say "CANNOT INSTALL chromium: the package installed but $BIN is missing"; return 1; }
  say "installed: $("$BIN" --version 2>/dev/null || echo "$BIN")"
}

case "${1:-}" in
  install) install ;;
  path)
    if installed; then echo "$BIN"; else
      say "not installed: $BIN (scripts/chromium.sh install)"
      exit 1
    fi
    ;;
  *)
    echo "usage: scripts/chromium.sh install|path" >&2
    exit 2
    ;;
esac
