#!/usr/bin/env bash
# Tests of the Neovim plugin, headless, against the real codexd and the fake issuer.
#
#   editors/nvim/test/run.sh [CASE...]      (all cases when none is named; build first: cargo build --workspace --bins)
#
# For each case: a fake issuer on 127.0.0.1 (writing a logged-in auth.json unless the case starts logged out), a
# codexd on its own socket in a temp dir with a cleared environment, readiness by `codexctl status` within a
# deadline, then `nvim --headless -u NONE --noplugin` running test/codexd_spec.lua for that case. Every process
# started here (and every codexd the case started itself, listed in DIR/pids) is stopped at the end.
# Binaries: CODEXD_BIN, CODEXCTL_BIN, FAKE_ISSUER_BIN (default <repo>/target/debug/...); NVIM (default nvim).
# Exit status: 0 when every case passed, 1 otherwise, 2 on a usage error or a missing binary.

set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
plugin=$(cd "$here/.." && pwd)
repo=$(cd "$plugin/../.." && pwd)

CODEXD_BIN=${CODEXD_BIN:-$repo/target/debug/codexd}
CODEXCTL_BIN=${CODEXCTL_BIN:-$repo/target/debug/codexctl}
FAKE_ISSUER_BIN=${FAKE_ISSUER_BIN:-$repo/target/debug/codexd-fake-issuer}
NVIM=${NVIM:-nvim}

# name | issuer: login (auth.json minted) / none (logged out) / off (no issuer, no codexd) | codexd: on / off | issuer flags
cases=(
  "socket_path|off|off|"
  "framing|off|off|"
  "token|login|on|"
  "logout|login|on|"
  "logout_command|login|on|"
  "stop|login|on|"
  "reconnect|login|on|"
  "absent|login|off|"
  "refresh|login|on|--access-token-lifetime-secs 4"
  "refresh_failed|login|on|"
  "device_login|none|on|"
  "login_cancel|none|on|--device-auto-approve-after 1000"
  "browser_login|none|on|"
  "apikey|none|on|"
)

for bin in "$CODEXD_BIN" "$CODEXCTL_BIN" "$FAKE_ISSUER_BIN"; do
  if [[ ! -x $bin ]]; then
    echo "run.sh: $bin is missing; build it with: cargo build --workspace --bins" >&2
    exit 2
  fi
done
if ! command -v "$NVIM" >/dev/null; then
  echo "run.sh: $NVIM not found (Debian: apt-get install neovim)" >&2
  exit 2
fi

wanted=("$@")
if ((${#wanted[@]} > 0)); then
  for w in "${wanted[@]}"; do
    found=0
    for c in "${cases[@]}"; do [[ ${c%%|*} == "$w" ]] && found=1; done
    if ((!found)); then
      echo "run.sh: no case named $w" >&2
      exit 2
    fi
  done
fi

now_ms() { date +%s%3N; }

# Processes of the current case, stopped by cleanup.
pids=()
tmp=""

cleanup() {
  local p
  if [[ -n $tmp && -f $tmp/pids ]]; then
    while read -r p; do [[ -n $p ]] && pids+=("$p"); done <"$tmp/pids"
  fi
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do
    # Wait up to 5 s for each, then SIGKILL.
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null
    wait "$p" 2>/dev/null
  done
  pids=()
}

on_exit() {
  cleanup
  if [[ -n $tmp && -d $tmp && -z ${KEEP_TMP:-} ]]; then rm -rf "$tmp"; fi
}
trap on_exit EXIT
trap 'exit 130' INT TERM

# redact FILE: FILE with every token the case saw (the secrets file lists them) replaced by <token>.
redact() {
  if [[ -s $tmp/secrets ]]; then
    sed -e "$(sed 's/[][\/.*^$]/\\&/g; s/.*/s\/&\/<token>\/g/' "$tmp/secrets")" "$1"
  else
    cat "$1"
  fi
}

show_logs() {
  local f
  for f in "$tmp"/*.log; do
    [[ -f $f ]] || continue
    echo "----- ${f##*/}"
    # Hide the tokens should a log hold one.
    redact "$f" | tail -n 40
  done
}

# run_case NAME ISSUER DAEMON FLAGS: 0 when it passed.
run_case() {
  local name=$1 issuer=$2 daemon=$3 flags=$4
  local home sock url="" line deadline rc
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/codexd-nvim.XXXXXX")
  home=$tmp/home
  sock=$tmp/s/codexd.sock
  mkdir -p "$home" "$tmp/nvimhome"
  : >"$tmp/pids"
  : >"$tmp/secrets"

  if [[ $issuer != off ]]; then
    local auth_args=()
    [[ $issuer == login ]] && auth_args=(--auth-json "$home/auth.json")
    # shellcheck disable=SC2086 # flags are words
    "$FAKE_ISSUER_BIN" --port 0 "${auth_args[@]}" $flags >"$tmp/issuer.out" 2>"$tmp/issuer.log" &
    pids+=($!)
    deadline=$(($(now_ms) + 10000))
    while :; do
      line=$(head -n 1 "$tmp/issuer.out" 2>/dev/null)
      url=$(grep -o 'http[s]*://[^ ]*' <<<"$line")
      [[ -n $url ]] && break
      if (($(now_ms) > deadline)) || ! kill -0 "${pids[-1]}" 2>/dev/null; then
        echo "fake issuer did not start" >"$tmp/runner.log"
        return 1
      fi
      sleep 0.02
    done
  fi

  if [[ $daemon == on ]]; then
    env -i PATH="$PATH" CODEXD_NO_AUTOSTART=1 HOME="$tmp" CODEXD_ISSUER="$url" CODEXD_LOGIN_PORTS=0 \
      "$CODEXD_BIN" --socket "$sock" --codex-home "$home" >>"$tmp/codexd.log" 2>&1 &
    pids+=($!)
    deadline=$(($(now_ms) + 10000))
    while :; do
      # Exit 0 logged in, 1 logged out: either way the daemon answered (3 = unreachable).
      "$CODEXCTL_BIN" --socket "$sock" status >/dev/null 2>&1
      rc=$?
      ((rc == 0 || rc == 1)) && break
      if (($(now_ms) > deadline)) || ! kill -0 "${pids[-1]}" 2>/dev/null; then
        echo "codexd did not answer on $sock" >"$tmp/runner.log"
        return 1
      fi
      sleep 0.02
    done
  fi

  env -i PATH="$PATH" CODEXD_NO_AUTOSTART=1 HOME="$tmp/nvimhome" TMPDIR="$tmp" \
    CODEXD_SOCKET="$sock" \
    CODEXD_TEST_CASE="$name" CODEXD_TEST_DIR="$tmp" CODEXD_TEST_HOME="$home" CODEXD_TEST_SOCKET="$sock" \
    CODEXD_TEST_ISSUER="$url" CODEXD_BIN="$CODEXD_BIN" CODEXCTL_BIN="$CODEXCTL_BIN" \
    timeout 60 "$NVIM" --headless -u NONE --noplugin -i NONE -n \
    --cmd "set rtp^=$plugin" -c "luafile $here/codexd_spec.lua" </dev/null >"$tmp/nvim.log" 2>&1 &
  # In the background so that a signal to this script stops the case at once (bash runs traps only between
  # foreground commands, but interrupts `wait`).
  local nvim_pid=$!
  pids+=("$nvim_pid")
  wait "$nvim_pid"
  rc=$?
  unset 'pids[-1]'
  if ((rc != 0)); then
    echo "nvim exited $rc" >>"$tmp/runner.log"
    return 1
  fi
  if [[ "$(cat "$tmp/result" 2>/dev/null)" != ok ]]; then
    echo "no ok result from the spec" >>"$tmp/runner.log"
    return 1
  fi
  # Nothing Neovim printed may contain a token the case saw.
  if [[ -s $tmp/secrets ]] && grep -qF -f "$tmp/secrets" "$tmp/nvim.log"; then
    echo "a token appears in Neovim's output" >>"$tmp/runner.log"
    return 1
  fi
  return 0
}

failed=()
total_start=$(now_ms)
for c in "${cases[@]}"; do
  IFS='|' read -r name issuer daemon flags <<<"$c"
  if ((${#wanted[@]} > 0)); then
    skip=1
    for w in "${wanted[@]}"; do [[ $w == "$name" ]] && skip=0; done
    ((skip)) && continue
  fi
  start=$(now_ms)
  if run_case "$name" "$issuer" "$daemon" "$flags"; then
    ok=1
  else
    ok=0
  fi
  elapsed=$(($(now_ms) - start))
  if ((ok)); then
    printf 'ok    %-16s %6d ms\n' "$name" "$elapsed"
  else
    printf 'FAIL  %-16s %6d ms\n' "$name" "$elapsed"
    # The spec's failure message, with the tokens hidden as in the logs.
    [[ -f $tmp/result ]] && redact "$tmp/result" | sed 's/^/      /'
    show_logs | sed 's/^/      /'
    failed+=("$name")
  fi
  cleanup
  if [[ -z ${KEEP_TMP:-} ]]; then rm -rf "$tmp"; else echo "      kept $tmp"; fi
  tmp=""
done

total=$(($(now_ms) - total_start))
if ((${#failed[@]} > 0)); then
  echo "nvim plugin tests: ${#failed[@]} failed (${failed[*]}) in $total ms"
  exit 1
fi
echo "nvim plugin tests: all passed in $total ms ($("$NVIM" --version | head -n 1))"
