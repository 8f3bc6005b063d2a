#!/bin/bash
# nftables-conf-rewrite: print an nftables file with its `flush ruleset`
# replaced by the deletion of the file's own tables only.
#
# Usage: nftables-conf-rewrite FILE   (writes the new text to stdout)
#
# Debian's stock /etc/nftables.conf starts with `flush ruleset`, so every
# `systemctl restart nftables` also deletes `table inet geofence` (geofenced
# restores it, but nothing is enforced until then). The rewritten file
# replaces that line, for each table the file declares, by
#     table FAMILY NAME
#     delete table FAMILY NAME
# (create it empty if missing, then delete it: valid on the first load and on
# every reload, with nftables 1.0.6 of Debian 12, which has no `destroy`), so
# reloading it replaces the admin's tables atomically and leaves every other
# table alone. Used by install.sh --fix-nftables-conf, which keeps a backup.
#
# Exit status: 0 = rewritten text printed; 2 = no `flush ruleset` (nothing to
# do); 1 = refused (the file includes other files, whose tables it cannot
# see, or declares no table), with the reason on stderr.
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 FILE" >&2; exit 1; }
f=$1
[ -r "$f" ] || { echo "nftables-conf-rewrite: cannot read $f" >&2; exit 1; }

flush_re='^[[:space:]]*flush[[:space:]]+ruleset[[:space:]]*;?[[:space:]]*(#.*)?$'
grep -Eq "$flush_re" "$f" || exit 2
if grep -Eq '^[[:space:]]*include[[:space:]]' "$f"; then
    echo "nftables-conf-rewrite: $f includes other files; rewrite it by hand (docs/operations.md)" >&2
    exit 1
fi

# Tables declared at the top level: `table [FAMILY] NAME {`.
tables=$(awk '
    /^[[:space:]]*(add[[:space:]]+)?table[[:space:]]/ && /\{/ {
        line = $0
        sub(/^[[:space:]]*(add[[:space:]]+)?table[[:space:]]+/, "", line)
        sub(/[[:space:]]*\{.*/, "", line)
        n = split(line, w, /[[:space:]]+/)
        if (n == 1) { fam = "ip"; name = w[1] } else { fam = w[1]; name = w[2] }
        if (fam ~ /^(ip|ip6|inet|arp|bridge|netdev)$/ && name ~ /^[A-Za-z_][A-Za-z0-9_.-]*$/) {
            key = fam " " name
            if (!(key in seen)) { seen[key] = 1; print key }
        }
    }' "$f")
if [ -z "$tables" ]; then
    echo "nftables-conf-rewrite: $f declares no table; nothing to replace \`flush ruleset\` with" >&2
    exit 1
fi
if printf '%s\n' "$tables" | grep -qx 'inet geofence'; then
    echo "nftables-conf-rewrite: $f declares table inet geofence, which geofenced owns; remove it first" >&2
    exit 1
fi

awk -v tables="$tables" -v re="$flush_re" '
    $0 ~ re {
        print "# `flush ruleset` replaced by install.sh --fix-nftables-conf: reloading"
        print "# this file replaces only the tables below and leaves the others"
        print "# (table inet geofence of geofenced) in place. See geofence operations.md."
        n = split(tables, t, "\n")
        for (i = 1; i <= n; i++) {
            print "table " t[i]
            print "delete table " t[i]
        }
        next
    }
    { print }' "$f"
