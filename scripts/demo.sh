#!/usr/bin/env bash
# The main job on the embedded default: SQLite + the built-in PBX simulator (no Asterisk
# configured). Installs if needed, checks the config and models, loads demo contacts,
# runs the daemon until the demo campaign is done, then shows results and the AMI log.
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
$tv serve --exit-when-idle "$@"
$tv campaign status demo
$tv events tail --limit 12
