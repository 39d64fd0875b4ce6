#!/usr/bin/env bash
# Run one measurement at a time on a shared machine, and start it only once the machine is
# quiet. A command prefix for timed runs, e.g.
#
#     python bench/bench_wall_time.py --state runs/wall --quiet bench/quiet.sh
#     bash bench/quiet.sh python bench/bench_training.py --nets fc
#
# What it does, and nothing more:
#   1. takes an exclusive lock (flock on $QUIET_LOCK), so measurements started through it
#      never overlap one another;
#   2. waits until the CPU time used by all processes, sampled over one second, drops below
#      $QUIET_MAX_BUSY cores, for at most $QUIET_WAIT_S seconds (then it goes on anyway and
#      says so on stderr: the measurement's own load figures tell how disturbed it was);
#   3. runs the command and exits with its status.
# It does not stop, pause or renice other processes.
#
# Settings (environment): QUIET_LOCK (default /tmp/rpucircuit-bench.lock), QUIET_MAX_BUSY
# (cores, default 0.3), QUIET_WAIT_S (seconds, default 120).
set -euo pipefail
if [ "$#" -eq 0 ]; then
    echo "usage: bench/quiet.sh COMMAND [ARGS...]" >&2
    exit 2
fi
LOCK="${QUIET_LOCK:-/tmp/rpucircuit-bench.lock}"
MAX_BUSY="${QUIET_MAX_BUSY:-0.3}"
WAIT_S="${QUIET_WAIT_S:-120}"

busy_jiffies() {  # all CPUs: user+nice+system+irq+softirq+steal (not idle, not iowait)
    awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat
}

exec 9>"$LOCK"
flock 9

hz="$(getconf CLK_TCK)"
deadline=$(( $(date +%s) + WAIT_S ))
while :; do
    b0="$(busy_jiffies)"
    sleep 1
    b1="$(busy_jiffies)"
    busy="$(awk -v d="$((b1 - b0))" -v hz="$hz" 'BEGIN { printf "%.2f", d / hz }')"
    if awk -v b="$busy" -v m="$MAX_BUSY" 'BEGIN { exit !(b < m) }'; then
        break
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
        echo "quiet.sh: machine still busy ($busy cores) after ${WAIT_S} s; running anyway" >&2
        break
    fi
done
# the lock stays held (fd 9 is inherited) until the command ends
exec "$@"
