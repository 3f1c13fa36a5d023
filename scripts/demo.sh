#!/usr/bin/env bash
# The main job on the embedded default: SQLite + the built-in PBX simulator (no Asterisk
# configured). Installs if needed, checks the config and models, loads demo contacts,
# runs the daemon until the demo campaign is done, then shows the results table, one
# whole transcript and the AMI log.
# Extra arguments go to `televox serve` (e.g. --no-models for a quick dry run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TELEVOX_CONFIG=config/demo/televox.yaml
tv=.venv/bin/televox

$tv check config/demo
$tv db upgrade
if [[ " $* " != *" --no-models "* ]]; then $tv models check; fi
$tv campaign import demo config/demo/contacts.csv
# A second run starts the demo over (restart keeps DNC); the first one just starts it.
$tv campaign restart demo >/dev/null 2>&1 || $tv campaign start demo
# Normally the campaign completes in about a minute. A callback the agent booked keeps
# it RUNNING until the callback is due (days away), so the demo stops the daemon
# (SIGTERM, a clean shutdown) after 3 minutes at most; `televox plan demo` shows it.
rc=0
timeout --signal=TERM 180 $tv serve --exit-when-idle "$@" || rc=$?
if [[ $rc -eq 124 ]]; then
  echo "demo: stopped the daemon after 3 minutes; a booked callback keeps the campaign open"
elif [[ $rc -ne 0 ]]; then
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
$tv events tail --limit 12
