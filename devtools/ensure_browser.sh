#!/usr/bin/env bash
# Install the system Chromium the console's browser tests drive (tests/browser/), if missing.
# Playwright's own browser download does not work here, so `make test` uses Debian's package;
# as root this installs it, otherwise it says what to run (and the tests then fail under
# RENDERQ_REQUIRE_BROWSER=1, which `make test` sets).
set -u

if command -v chromium >/dev/null || command -v chromium-browser >/dev/null; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
  echo "installing chromium for the console's browser tests"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  command -v chromium >/dev/null && exit 0
  echo "chromium could not be installed; the browser tests will fail" >&2
  exit 0
fi
echo "no chromium on PATH: run 'sudo apt-get install chromium' or the browser tests will fail" >&2
exit 0
