#!/bin/sh
# Prints the markdown table of docs/fuzzing.md from the logs of run-all.sh.
# Usage (from crates/fuzz): [LOGS=dir] ./stats.sh [target...]
TARGETS=${*:-"dns tls quic quic_frames stun payload decode policy sigdb engine mmdb engine_long"}
echo "| target | executions | exec/s | seconds | coverage (edges) | corpus | peak RSS MB | crashes |"
echo "|---|---:|---:|---:|---:|---:|---:|---|"
for t in $TARGETS; do
    f=${LOGS:-logs}/$t.log
    [ -f "$f" ] || continue
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$f")
    eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$f")
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$f")
    secs=$(sed -n 's/.*-max_total_time=\([0-9]*\).*/\1/p' "$f" | head -n 1)
    cov=$(grep -E '^#[0-9]+' "$f" | tail -n 1 | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
    corp=$(grep -E '^#[0-9]+' "$f" | tail -n 1 | sed -n 's/.*corp: \([0-9]*\/[0-9A-Za-z]*\).*/\1/p')
    if grep -qE '^==[0-9]+==ERROR|panicked at|SUMMARY: libFuzzer' "$f"; then
        crash=$(grep -oE 'Test unit written to [^ ]*' "$f" | sed 's/Test unit written to //' | tr '\n' ' ')
    else
        crash=0
    fi
    echo "| $t | $execs | $eps | $secs | $cov | $corp | $rss | $crash |"
done
