# Load-average helpers shared by the benchmarks. On this 2-core machine a benchmark's
# own single-threaded work raises the 1-minute load average to about 1, so a run is
# trusted when the load was at most 1 before it started (nothing else running) and at
# most 2 after it (nothing else took a whole core meanwhile).

load1() { cut -d' ' -f1 /proc/loadavg; }

# Waits up to 3 minutes for the 1-minute load average to fall to 1 or below.
wait_for_idle() {
    local waited=0
    while [ "$(echo "$(load1) > 1" | bc)" = 1 ] && [ "$waited" -lt 180 ]; do
        sleep 10; waited=$((waited + 10))
    done
}

# "" when the run can be trusted, else a note saying why not. Args: load before, after.
noise_note() {
    if [ "$(echo "$1 > 1 || $2 > 2" | bc)" = 1 ]; then
        echo " (noisy: load average $1 before, $2 after, on this 2-core machine; re-run on an idle machine)"
    fi
}
