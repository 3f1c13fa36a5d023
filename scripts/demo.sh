#!/usr/bin/env bash
# The main job on the embedded default: SQLite + the built-in PBX simulator (no Asterisk
# configured). Installs if needed, checks the config and models, loads demo contacts,
# runs the daemon until the demo campaign is done, then shows the results table, one
# whole transcript and the AMI log.
# Extra arguments go to `televox serve` (e.g. --no-models for a quick dry run).
# Exits non-zero, with the reason, when the daemon fails or makes no call.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TELEVOX_CONFIG=${TELEVOX_CONFIG:-config/demo/televox.yaml}
tv=.venv/bin/televox
py=.venv/bin/python

# Prints "simulator" or "asterisk", the number of call attempts stored so far, and
# whether the HTTP API's configured port is free ("free" or "taken").
demo_state() {
  "$py" - <<'EOF'
import socket
import sqlite3
from televox_pbx.config.loader import load_settings, settings_path
s = load_settings(settings_path())
con = sqlite3.connect(s.database.path)
try:
    n = con.execute("SELECT COUNT(*) FROM call_attempts").fetchone()[0]
finally:
    con.close()
with socket.socket() as sock:
    try:
        sock.bind((s.http.bind_host, s.http.port))
        http = "free"
    except OSError:
        http = "taken"
print("asterisk" if s.ami.host else "simulator", n, http)
EOF
}

$tv check config/demo
$tv db upgrade
if [[ " $* " != *" --no-models "* ]]; then $tv models check; fi
$tv campaign import demo config/demo/contacts.csv
# A second run starts the demo over (restart keeps DNC); the first one just starts it.
$tv campaign restart demo >/dev/null 2>&1 || $tv campaign start demo
state=$(demo_state)
read -r mode calls_before http <<<"$state"
serve_args=(--exit-when-idle)
if [[ $mode == simulator ]]; then
  # The simulator is told where the daemon listens, so any free port will do: a daemon
  # already running here (or anything else on the configured port) does not stop the demo.
  serve_args+=(--audiosocket-port 0)
  if [[ $http == taken ]]; then
    echo "demo: the HTTP API's port is taken; the API listens on a free port this time" \
         "(its 'HTTP API listening' log line says which)"
    serve_args+=(--http-port 0)
  fi
fi
# Normally the campaign completes in about a minute. A callback the agent booked keeps
# it RUNNING until the callback is due (days away), so the demo stops the daemon
# (SIGTERM, a clean shutdown) after 3 minutes at most; `televox plan demo` shows it.
rc=0
timeout --signal=TERM 180 $tv serve "${serve_args[@]}" "$@" || rc=$?
state=$(demo_state)
read -r mode calls_after http <<<"$state"
calls=$((calls_after - calls_before))
if [[ $rc -ne 0 && $rc -ne 124 ]]; then
  echo "demo: the daemon failed (exit $rc); its reason is on the line above" >&2
  exit "$rc"
fi
$tv campaign status demo
echo; echo "== results"
$tv calls list --campaign demo
# One whole conversation: the patient who could not come (else any call that has turns).
id=$($tv calls list --campaign demo --json | .venv/bin/python -c '
import json, sys
rows = [json.loads(line) for line in sys.stdin if line.strip()]
talked = [r for r in rows if r.get("turns")]
pick = [r for r in talked if str(r.get("phone", "")).endswith("0100002")] or talked
print(pick[0]["id"] if pick else "")')
if [[ -n $id ]]; then echo; echo "== one call, turn by turn"; $tv calls show "$id"; fi
echo
$tv plan demo
if [[ $calls -eq 0 ]]; then
  echo "demo: the daemon made no calls; \`televox plan demo\` above says why each contact" \
       "was not dialled" >&2
  exit 1
fi
if [[ $rc -eq 124 ]]; then
  echo "demo: stopped the daemon after 3 minutes ($calls calls made); a booked callback" \
       "keeps the campaign open"
fi
$tv events tail --limit 12
