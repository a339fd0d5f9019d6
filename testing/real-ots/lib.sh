# Shared by build, up and down. Sourced, never run.
# shellcheck shell=bash

RO_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# The genuine server this harness runs (onetimesecret main, the v0.26.6 line) and the Ruby it runs on.
RO_OTS_COMMIT=de53ff8f7
RO_RUBY_VERSION=3.3.8

ro_die() {
  echo "real-ots: $*" >&2
  exit 1
}

ro_log() {
  echo "real-ots: $*" >&2
}

# Where the sources are: $OTS_REAL_SOURCES, else shared/real-ots beside the repository.
ro_sources() {
  if [ -n "${OTS_REAL_SOURCES:-}" ]; then
    echo "$OTS_REAL_SOURCES"
  else
    echo "$(cd "$RO_HERE/../../.." && pwd)/shared/real-ots"
  fi
}

# Exit status of build and up when the sources are missing (tests skip on it).
RO_NO_SOURCES=3
RO_SOURCES_HINT="set OTS_REAL_SOURCES to a directory holding onetimesecret-$RO_OTS_COMMIT.tar.gz, ruby3.3_$RO_RUBY_VERSION.orig.tar.xz, gems/, patches/ and Gemfile.local (see testing/real-ots/README.md)"

# Empty when every source file is there, else the first one missing.
ro_missing_source() { # SOURCES
  local f
  for f in "onetimesecret-$RO_OTS_COMMIT.tar.gz" "ruby3.3_$RO_RUBY_VERSION.orig.tar.xz" Gemfile.local \
    patches/ruby-3.3-block-param.diff patches/otto-2.9-request_extras.rb; do
    [ -f "$1/$f" ] || { echo "$1/$f"; return 0; }
  done
  compgen -G "$1/gems/*.gem" >/dev/null || echo "$1/gems/*.gem"
}

# How Ruby is configured; part of its cache key.
RO_RUBY_CONFIGURE=(--disable-install-doc --disable-install-rdoc --disable-yjit)

# Ruby has a cache key of its own (its tarball and configure flags), so that changing the server's
# inputs or the build script never rebuilds Ruby (the longest step, ~11 min on 2 busy cores).
ro_ruby_dir() { # SOURCES
  local hash
  hash=$( (
    echo "${RO_RUBY_CONFIGURE[*]}"
    sha256sum <"$1/ruby3.3_$RO_RUBY_VERSION.orig.tar.xz"
  ) | sha256sum | cut -c1-12)
  echo "${XDG_CACHE_HOME:-$HOME/.cache}/ots-operator/real-ots-${RO_OTS_COMMIT}/ruby-${RO_RUBY_VERSION}_${hash}"
}

# The server's gems and app: Ruby's key plus a hash of every other input (the app's tarball,
# patches, gems, Gemfile.local, the build script).
ro_server_dir() { # SOURCES
  local hash
  hash=$( (
    basename "$(ro_ruby_dir "$1")"
    cat "$RO_HERE/build"
    cd "$1" && find "onetimesecret-$RO_OTS_COMMIT.tar.gz" Gemfile.local patches gems -type f -print0 |
      sort -z | xargs -0 sha256sum
  ) | sha256sum | cut -c1-12)
  echo "${XDG_CACHE_HOME:-$HOME/.cache}/ots-operator/real-ots-${RO_OTS_COMMIT}/server_${hash}"
}

# Where Ruby keeps its bundled gems (racc, rexml, ...), which the server needs beside its own.
ro_ruby_gem_dir() { # RUBY_DIR
  echo "$1/lib/ruby/gems/$RO_RUBY_VERSION" | sed 's/\.[0-9]*$/.0/'
}

ro_is_built() { # SERVER_DIR
  [ -f "$1/.complete" ] && [ -f "$1/app/Gemfile.local.lock" ] && [ -L "$1/ruby" ] && [ -x "$1/ruby/bin/ruby" ]
}

# The server's environment, one VAR=value a line (the recipe of shared/real-ots/README.md).
# CSP_ENABLED=false: with it on, every HTML page (the recipient's too) answers 500 "unknown
# keyword: :env": the app passes env: to otto 2.9's CSP Writer.apply, which the otto 2.8.0 built
# here lacks (apps/web/core/middleware/request_setup.rb, web pages only). It drops the
# Content-Security-Policy header of those pages; the JSON APIs answered alike with it on.
ro_server_env() { # SERVER_DIR REDIS_PORT SECRET SESSION_SECRET
  printf '%s\n' \
    "PATH=$1/ruby/bin:$PATH" \
    "GEM_HOME=$1/gems" "GEM_PATH=$1/gems:$(ro_ruby_gem_dir "$1/ruby")" \
    "BUNDLE_GEMFILE=$1/app/Gemfile.local" \
    RACK_ENV=production \
    "REDIS_URL=redis://127.0.0.1:$2/0" \
    "SECRET=$3" "SESSION_SECRET=$4" \
    SSL=false AUTHENTICATION_MODE=simple CSP_ENABLED=false \
    RUBYOPT=-rtime
}

# Makes (or renews) an account with an API token: `bin/ots apitoken`, which prints `API Token:`.
ro_make_account() { # SERVER_DIR EMAIL ENV...
  local server_dir=$1 email=$2
  shift 2
  cd "$server_dir/app" && exec env "$@" HOST=127.0.0.1 bundle exec bin/ots apitoken "$email" --create-or-update
}

# The token in bin/ots apitoken's output (stdin).
ro_token() {
  sed -n 's/.*API Token: *\([^ ]*\).*/\1/p' | tail -n1
}

# Start time of a live process (field 22 of /proc/PID/stat), which tells it from a later process
# that got the same pid; nothing for a gone or zombie process.
ro_starttime() { # PID
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  stat=${stat##*) }
  # shellcheck disable=SC2086
  set -- $stat
  [ "$1" != Z ] || return 0
  echo "${20}"
}

# True while PID is still the process that had start time START.
ro_alive() { # PID START
  [ -n "$1" ] && [ -n "$2" ] && [ "$(ro_starttime "$1")" = "$2" ]
}

# A value from DIR/env, read as data rather than sourced.
ro_env_value() { # DIR NAME
  [ -f "$1/env" ] || return 0
  sed -n "s/^$2=//p" "$1/env" | head -n1
}

# The frontend's toolchain (build-web): the versions its package.json asks for (pnpm 11.10.0 is its
# `packageManager`; pnpm 11 needs Node >= 22.13).
RO_NODE_VERSION=22.23.3
RO_PNPM_VERSION=11.10.0

ro_web_tools_dir() {
  echo "${XDG_CACHE_HOME:-$HOME/.cache}/ots-operator/node-${RO_NODE_VERSION}_pnpm-${RO_PNPM_VERSION}"
}

ro_pnpm_store() {
  echo "${XDG_CACHE_HOME:-$HOME/.cache}/ots-operator/pnpm-store"
}

# The frontend's build: the app's tarball, node and pnpm versions and build-web itself.
ro_web_dir() { # SOURCES
  local hash
  hash=$( (
    echo "node $RO_NODE_VERSION pnpm $RO_PNPM_VERSION"
    cat "$RO_HERE/build-web"
    sha256sum <"$1/onetimesecret-$RO_OTS_COMMIT.tar.gz"
  ) | sha256sum | cut -c1-12)
  echo "${XDG_CACHE_HOME:-$HOME/.cache}/ots-operator/real-ots-${RO_OTS_COMMIT}/web_${hash}"
}

ro_web_is_built() { # WEB_DIR
  [ -f "$1/.complete" ] && [ -f "$1/public/web/dist/.vite/manifest.json" ]
}
