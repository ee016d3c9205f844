#!/bin/bash
# The documentation matches the code:
#  - every man page in man/ renders without a single groff warning (-ww), at several widths, is
#    plain ASCII, and its .TH names its file; cross-references to gmem pages resolve;
#  - gmemctl(1): every command in tools/gmemctl.c's table has an entry under COMMANDS and no entry
#    names a command that does not exist; each entry's synopsis lists exactly the options that
#    command's getopt table has (besides the global --socket/--json); the global options and short
#    options are under GLOBAL OPTIONS; every "--option" string the code compares is in the page;
#  - gmemd(8): every long and short option of gmemd/main.c is under OPTIONS;
#  - gmemd.json(5): every key of gmemd/config.c (the limits table, workers, socket_mode) has an
#    entry, and the entry states the key's default and range as the code has them;
#  - libgmem(3): every symbol libgmem/libgmem.sym exports and every function gmem.h declares is
#    in the page, and the page's synopsis declares no function that is not exported;
#  - docs/design.md exists and its relative links resolve;
#  - completion/gmemctl.bash loads in a plain bash, completes `gmemctl cr<TAB>` to create and
#    `gmemctl create x --backend <TAB>` to memfd hugetlb secret, offers exactly the code's commands
#    and each command's options, gives up quickly without a daemon, and (when gmemd is built)
#    completes region names from a real gmemd on a private socket, --socket given on the line.
# Exit 0 pass, 77 skip (the last line says why), anything else fail.
set -uo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.." || exit 1
src=$PWD
BUILD=${BUILD:-build}
[[ $BUILD == /* ]] || BUILD=$src/$BUILD

failures=()
fail() {
        echo "FAIL: $*"
        failures+=("$*")
}
ok() { echo "ok: $*"; }

ctl_c=tools/gmemctl.c
main_c=gmemd/main.c
config_c=gmemd/config.c
sym=libgmem/libgmem.sym
header=include/gmem/gmem.h
pages=(man/gmemd.8 man/gmemctl.1 man/libgmem.3 man/gmemd.json.5)
for f in "$ctl_c" "$main_c" "$config_c" "$sym" "$header" "${pages[@]}" docs/design.md completion/gmemctl.bash; do
        [[ -s $f ]] || { echo "FAIL: $f is missing or empty"; exit 1; }
done

tmp=$(mktemp -d /tmp/gmem-check-docs.XXXXXX)
gmemd_pid=
cleanup() {
        if [[ -n $gmemd_pid ]]; then
                kill -TERM "$gmemd_pid" 2> /dev/null
                wait "$gmemd_pid" 2> /dev/null
        fi
        rm -rf "$tmp"
}
trap cleanup EXIT

# Man source without font escapes and with \- as -, for matching words.
plain() {
        sed -e 's/\\f[BIRP]//g' -e 's/\\f(..//g' -e 's/\\-/-/g' -e 's/\\%//g' -e 's/\\://g' -e 's/\\e/\\/g' "$@"
}

# Lines of section $2 (".SH NAME" up to the next .SH) of page $1.
section() {
        awk -v want="$2" '/^\.SH /{ s = substr($0, 5); gsub(/"/, "", s); on = (s == want); next } on' "$1"
}

# ---------------------------------------------------------------------------------------------
# Rendering
rendered=0
if command -v groff > /dev/null; then
        for p in "${pages[@]}"; do
                for ll in "" 72n 80n 100n; do
                        out=$(groff -man -Tutf8 -ww -z ${ll:+-rLL=$ll} "$p" 2>&1)
                        [[ -z $out ]] || fail "$p: groff warnings${ll:+ at line length $ll}: $out"
                done
        done
        if command -v man > /dev/null; then
                for p in "${pages[@]}"; do
                        out=$(MANWIDTH=80 man --warnings -l "$p" 2>&1 > /dev/null)
                        [[ -z $out ]] || fail "$p: man --warnings: $out"
                done
        fi
        rendered=1
        ok "man pages render without warnings"
fi
for p in "${pages[@]}"; do
        if grep -nP '[^\x00-\x7F]' "$p" > "$tmp/nonascii"; then
                fail "$p: non-ASCII characters (use groff escapes): $(head -n 3 "$tmp/nonascii")"
        fi
        base=$(basename "$p")
        want_name=${base%.*}
        want_sect=${base##*.}
        th=$(grep -m1 '^\.TH ' "$p" | awk '{ print $2, $3 }')
        [[ $th == "${want_name^^} $want_sect" ]] || fail "$p: .TH says '$th', expected '${want_name^^} $want_sect'"
        # references to gmem's own pages resolve
        while read -r ref; do
                name=${ref% *}
                sect=${ref#* }
                [[ -f man/$name.$sect ]] || fail "$p refers to $name($sect), which is not in man/"
        done < <(grep -oE '^\.BR (gmemd|gmemctl|libgmem|gmemd\.json) \([1-8]\)' "$p" | sed -E 's/^\.BR ([^ ]+) \(([1-8])\)/\1 \2/')
done

# ---------------------------------------------------------------------------------------------
# gmemctl: commands and options from the code
# "fn opt" for every getopt option, with COMMON for the COMMON_OPTIONS macro and "fn @target" for
# a command function that hands over to another (grant/revoke -> access_command).
awk '
/^#define COMMON_OPTIONS/ { in_def = 1 }
in_def && match($0, /\{ "[a-z][a-z-]*", (no|required|optional)_argument/) {
        s = substr($0, RSTART + 3); sub(/".*/, "", s); print "COMMON", s
}
in_def && !/\\$/ { in_def = 0; next }
/^(static )?int [a-z_]+\(/ { fn = $0; sub(/^(static )?int /, "", fn); sub(/\(.*/, "", fn) }
/^}/ { fn = "" }
fn != "" && match($0, /\{ "[a-z][a-z-]*", (no|required|optional)_argument/) {
        s = substr($0, RSTART + 3); sub(/".*/, "", s); print fn, s
}
fn != "" && match($0, /return access_command\(/) { print fn, "@access_command" }
' "$ctl_c" > "$tmp/ctl-opts"

# command -> function, from the commands[] table
grep -oE '^        \{ "[a-z]+", cmd_[a-z_]+,' "$ctl_c" | sed -E 's/.*"([a-z]+)", (cmd_[a-z_]+),/\1 \2/' > "$tmp/ctl-cmds"
[[ $(wc -l < "$tmp/ctl-cmds") -ge 10 ]] || fail "could not read the command table of $ctl_c"
grep -q '^COMMON socket$' "$tmp/ctl-opts" && grep -q '^COMMON json$' "$tmp/ctl-opts" ||
        fail "could not read COMMON_OPTIONS of $ctl_c"

options_of() { # command -> its own (non-common) long options, sorted
        local fn target
        fn=$(awk -v c="$1" '$1 == c { print $2 }' "$tmp/ctl-cmds")
        target=$(awk -v f="$fn" '$1 == f && $2 ~ /^@/ { print substr($2, 2) }' "$tmp/ctl-opts")
        [[ -n $target ]] && fn=$target
        awk -v f="$fn" '$1 == f && $2 !~ /^@/ { print "--" $2 }' "$tmp/ctl-opts" | sort -u
}

plain man/gmemctl.1 > "$tmp/gmemctl.plain"
plain man/gmemd.8 > "$tmp/gmemd.plain"

# gmemctl(1): the top-level .TP tags under COMMANDS, plain: "create NAME --size SIZE [...]"
section man/gmemctl.1 COMMANDS | awk '
/^\.RS/ { depth++ } /^\.RE/ { depth-- }
depth == 0 && /^\.TP/ { tag = 1; next }
tag { print; tag = 0 }
' | plain | sed -E -e 's/^\.(B|BI|BR|I|IR|RI) //' -e 's/"//g' > "$tmp/man-tags"

commands=$(awk '{ print $1 }' "$tmp/ctl-cmds")
for c in $commands; do
        tagline=$(awk -v c="$c" '$1 == c' "$tmp/man-tags")
        if [[ -z $tagline ]]; then
                fail "gmemctl(1): no entry for the command '$c' under COMMANDS"
                continue
        fi
        have=$(grep -oE -- '--[a-z][a-z-]*' <<< "$tagline" | sort -u)
        want=$(options_of "$c")
        [[ $have == "$want" ]] ||
                fail "gmemctl(1): '$c' lists options [$(echo $have)], the code has [$(echo $want)]"
done
while read -r c _; do
        grep -qx "$c" <<< "$commands" || fail "gmemctl(1) documents a command '$c' that $ctl_c does not have"
done < "$tmp/man-tags"

# global options: COMMON_OPTIONS and main()'s, long and short
section man/gmemctl.1 "GLOBAL OPTIONS" | plain > "$tmp/man-global"
for o in $(awk '$1 == "COMMON" || $1 == "main" { print $2 }' "$tmp/ctl-opts" | sort -u); do
        grep -qE -- "(^|[^a-z-])--$o([^a-z-]|$)" "$tmp/man-global" || fail "gmemctl(1): --$o is not under GLOBAL OPTIONS"
done
shorts=$(grep -oE 'getopt_long\(argc, argv, "[^"]*"' "$ctl_c" | sed -E 's/.*"([^"]*)"/\1/' | tr -d '+:')
for s in $(grep -o . <<< "$shorts"); do
        grep -qE -- "(^|[^a-z-])-$s([^a-z-]|$)" "$tmp/man-global" || fail "gmemctl(1): -$s is not under GLOBAL OPTIONS"
done
# every option string the code compares by hand (exec's --json, --socket, --socket=)
for lit in $(grep -oE '"--[a-z][a-z-]*=?"' "$ctl_c" | tr -d '"' | sort -u); do
        grep -qF -- "$lit" "$tmp/gmemctl.plain" || fail "gmemctl(1): '$lit' (compared in $ctl_c) is not in the page"
done
# the values the code accepts
for v in memfd hugetlb secret keep connection; do
        grep -qw -- "$v" "$tmp/gmemctl.plain" || fail "gmemctl(1): the value '$v' is not in the page"
done
for e in GMEMD_SOCKET XDG_RUNTIME_DIR GMEM_KERNEL_PROFILE; do
        section man/gmemctl.1 ENVIRONMENT > "$tmp/env" && grep -q "$e" "$tmp/env" || fail "gmemctl(1): $e is not under ENVIRONMENT"
done
grep -q 'mem-path=/proc/self/fd/{fd:' "$tmp/gmemctl.plain" || fail "gmemctl(1): no QEMU mem-path example"
grep -q 'ENXIO' "$tmp/gmemctl.plain" || fail "gmemctl(1): the memfd_secret ENXIO caveat is missing"
ok "gmemctl(1) checked against $ctl_c ($(wc -w <<< "$commands") commands)"

# ---------------------------------------------------------------------------------------------
# gmemd(8): options
section man/gmemd.8 OPTIONS | plain > "$tmp/gmemd-options"
long=$(awk '
/^int main\(/ { on = 1 } on && /^}/ { on = 0 }
on && match($0, /\{ "[a-z][a-z-]*", (no|required|optional)_argument/) { s = substr($0, RSTART + 3); sub(/".*/, "", s); print s }
' "$main_c")
[[ -n $long ]] || fail "could not read gmemd's options from $main_c"
for o in $long; do
        grep -qE -- "(^|[^a-z-])--$o([^a-z-]|$)" "$tmp/gmemd-options" || fail "gmemd(8): --$o is not under OPTIONS"
done
shorts=$(grep -oE 'getopt_long\(argc, argv, "[^"]*"' "$main_c" | sed -E 's/.*"([^"]*)"/\1/' | tr -d '+:')
for s in $(grep -o . <<< "$shorts"); do
        grep -qE -- "(^|[^a-z-])-$s([^a-z-]|$)" "$tmp/gmemd-options" || fail "gmemd(8): -$s is not under OPTIONS"
done
for v in system user none; do
        grep -qw "$v" "$tmp/gmemd-options" || fail "gmemd(8): --bus $v is not under OPTIONS"
done
for s in org.gmem.Broker1 /org/gmem/Broker1 org.gmem.Broker1.Manager org.gmem.Broker1.Region /org/gmem/Broker1/region/ \
        SIGTERM SIGINT FDSTORE WATCHDOG Type=notify docs/dbus.md /run/gmemd/gmemd.sock XDG_RUNTIME_DIR GMEMD_SOCKET; do
        grep -qF -- "$s" "$tmp/gmemd.plain" || fail "gmemd(8) does not mention $s"
done
ok "gmemd(8) checked against $main_c"

# ---------------------------------------------------------------------------------------------
# gmemd.json(5): keys, defaults, ranges
# The entry of key $1: from its ".TP" tag to the next tag, paragraph or section, plain.
json_entry() {
        awk -v k="$1" '
        /^\.(TP|PP|SH|SS)/ { if (on) exit; tp = ($0 ~ /^\.TP/); next }
        tp && $0 == ".B " k { on = 1; tp = 0; next }
        { tp = 0 }
        on' man/gmemd.json.5 | plain | tr '\n' ' '
}
c_number() { # a C constant expression of the table: 1024, 16 << 20, UINT64_MAX
        case $1 in
        UINT64_MAX) echo "2^53" ;; # JSON numbers stop there (json_get_u64)
        *) echo $(($1)) ;;
        esac
}
n_keys=0
while IFS='|' read -r key lo hi; do
        n_keys=$((n_keys + 1))
        entry=$(json_entry "$key")
        if [[ -z $entry ]]; then
                fail "gmemd.json(5): no entry for limits.$key"
                continue
        fi
        for n in "$(c_number "$lo")" "$(c_number "$hi")"; do
                grep -qF -- "$n" <<< "$entry" || fail "gmemd.json(5): limits.$key: the range bound $n is not stated"
        done
        dflt=$(grep -oE "\.$key = [^,]+," "$config_c" | sed -E 's/.* = (.*),/\1/')
        case $dflt in
        "") fail "gmemd.json(5): no default for limits.$key in $config_c" ;;
        ram_bytes*) grep -q 'RAM' <<< "$entry" || fail "gmemd.json(5): limits.$key: the RAM default is not stated" ;;
        *) grep -qw -- "$(($dflt))" <<< "$entry" || fail "gmemd.json(5): limits.$key: the default $(($dflt)) is not stated" ;;
        esac
done < <(grep -oE '^ *L\([a-z_]+, [^,]+, [^,]+, (true|false), (true|false)\)' "$config_c" |
        sed -E 's/^ *L\(([a-z_]+), ([^,]+), ([^,]+), .*/\1|\2|\3/')
((n_keys >= 8)) || fail "could not read the limits table of $config_c (found $n_keys keys)"
json_entry limits > /dev/null
section man/gmemd.json.5 LIMITS > "$tmp/limits" && grep -qw limits "$tmp/limits" || fail "gmemd.json(5): the 'limits' object is not described"
for key in $(grep -oE 'json_get_[a-z0-9]+\(root, "[a-z_]+"' "$config_c" | sed -E 's/.*"([a-z_]+)"/\1/'); do
        entry=$(json_entry "$key")
        [[ -n $entry ]] || { fail "gmemd.json(5): no entry for $key"; continue; }
        case $key in
        workers)
                read -r lo hi < <(grep -oE 'workers < [0-9]+ \|\| workers > [0-9]+' "$config_c" | sed -E 's/workers < ([0-9]+) \|\| workers > ([0-9]+)/\1 \2/')
                grep -qE "range $lo to $hi" <<< "$entry" || fail "gmemd.json(5): workers: range $lo to $hi is not stated"
                ;;
        socket_mode)
                mode=$(grep -oE '\.socket_mode = 0[0-7]+' "$config_c" | sed 's/.* = //')
                grep -qF "$mode" <<< "$entry" || fail "gmemd.json(5): socket_mode: the default $mode is not stated"
                grep -qF "0777" <<< "$entry" || fail "gmemd.json(5): socket_mode: the maximum 0777 is not stated"
                ;;
        esac
done
ok "gmemd.json(5) checked against $config_c ($n_keys limits)"

# ---------------------------------------------------------------------------------------------
# libgmem(3): exported symbols and declared functions
exported=$(awk '/global:/ { on = 1; next } /local:/ { on = 0 } on' "$sym" | tr -d ' \t;' | grep -E '^gmem_')
[[ $(wc -l <<< "$exported") -ge 40 ]] || fail "could not read the exported symbols of $sym"
plain man/libgmem.3 > "$tmp/libgmem.3"
for s in $exported; do
        grep -qw -- "$s" "$tmp/libgmem.3" || fail "libgmem(3) does not mention $s (exported by $sym)"
done
for f in $(grep -oE '\bgmem_[a-z0-9_]+\(' "$header" | tr -d '(' | sort -u); do
        grep -qw -- "$f" "$tmp/libgmem.3" || fail "libgmem(3) does not mention $f (declared in $header)"
done
for f in $(section man/libgmem.3 SYNOPSIS | plain | grep -oE '\bgmem_[a-z0-9_]+\(' | tr -d '(' | sort -u); do
        grep -qx -- "$f" <<< "$exported" || fail "libgmem(3)'s synopsis declares $f, which $sym does not export"
done
for s in gmem_last_error ret_ "pkg-config --cflags --libs libgmem" "THREAD SAFETY"; do
        grep -qF -- "$s" "$tmp/libgmem.3" || fail "libgmem(3) does not mention $s"
done
ok "libgmem(3) checked against $sym and $header ($(wc -l <<< "$exported") symbols)"

# ---------------------------------------------------------------------------------------------
# docs/design.md: its relative links resolve
while read -r link; do
        target=${link%%#*}
        [[ -z $target || $target == *://* ]] && continue
        [[ -e docs/$target ]] || fail "docs/design.md links to '$link', which does not exist"
done < <(grep -oE '\]\([^)]+\)' docs/design.md | sed -E 's/^\]\((.*)\)$/\1/')
ok "docs/design.md links"

# ---------------------------------------------------------------------------------------------
# completion/gmemctl.bash
bash -n completion/gmemctl.bash || fail "completion/gmemctl.bash does not parse"
# complete WORDS...: the candidates for the last word, one line, in a plain bash with only the
# completion script loaded and no daemon reachable unless GMEMD_SOCKET/--socket name one.
complete_line() {
        env -u BASH_ENV -u ENV XDG_RUNTIME_DIR="$tmp/no-runtime" GMEMD_SOCKET="${COMP_TEST_SOCKET:-$tmp/no-daemon.sock}" \
                bash --norc --noprofile -c '
                source completion/gmemctl.bash || exit 3
                complete -p gmemctl | grep -q -- "-F _gmemctl" || exit 4
                COMP_WORDS=("$@")
                COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
                COMP_LINE="$*"
                COMP_POINT=${#COMP_LINE}
                _gmemctl || exit 5
                echo "${COMPREPLY[*]}"' complete "$@"
}
got=$(complete_line gmemctl cr)
[[ $got == create ]] || fail "completion: 'gmemctl cr<TAB>' gives '$got', not 'create'"
got=$(complete_line gmemctl create x --backend '')
[[ $got == "memfd hugetlb secret" ]] || fail "completion: 'gmemctl create x --backend <TAB>' gives '$got'"
got=$(complete_line gmemctl create x --backend = '')
[[ $got == "memfd hugetlb secret" ]] || fail "completion: 'gmemctl create x --backend=<TAB>' gives '$got'"
got=$(complete_line gmemctl create x --policy '')
[[ $got == "keep connection" ]] || fail "completion: 'gmemctl create x --policy <TAB>' gives '$got'"
got=$(complete_line gmemctl '' | tr ' ' '\n' | sort | tr '\n' ' ')
want=$({ echo "$commands"; echo help; } | sort | tr '\n' ' ')
[[ $got == "$want" ]] || fail "completion offers the commands [$got], the code has [$want]"
for c in $commands; do
        got=$(complete_line gmemctl "$c" -- | tr ' ' '\n' | grep -vx -- '--' | sort | tr '\n' ' ')
        # the line's own flags (taken wherever they come) besides the command's
        want=$({ echo --socket; echo --json; echo --user; echo --no-legend; echo --help; options_of "$c"; } | sort -u | tr '\n' ' ')
        [[ $got == "$want" ]] || fail "completion: 'gmemctl $c --<TAB>' offers [$got], the code takes [$want]"
done
got=$(complete_line gmemctl populate ram0 --from completion/gmemctl.ba)
[[ $got == completion/gmemctl.bash ]] || fail "completion: --from does not complete files (got '$got')"
start=$SECONDS
got=$(complete_line gmemctl info '')
[[ -z $got ]] || fail "completion: 'gmemctl info <TAB>' without a daemon gives '$got'"
((SECONDS - start <= 5)) || fail "completion: 'gmemctl info <TAB>' without a daemon took $((SECONDS - start)) s"

if [[ -x $BUILD/bin/gmemd && -x $BUILD/bin/gmemctl ]]; then
        sock=$tmp/gmemd.sock
        env -u NOTIFY_SOCKET -u LISTEN_FDS -u LISTEN_PID -u LISTEN_FDNAMES -u WATCHDOG_USEC \
                "$BUILD/bin/gmemd" --socket "$sock" --bus none > "$tmp/gmemd.log" 2>&1 &
        gmemd_pid=$!
        for _ in $(seq 50); do
                [[ -S $sock ]] && break
                sleep 0.1
        done
        if "$BUILD/bin/gmemctl" --socket "$sock" create docs-test.0 --size 4K 2> "$tmp/create.err" &&
                "$BUILD/bin/gmemctl" --socket "$sock" create docs-other --size 4K 2>> "$tmp/create.err"; then
                got=$(complete_line "$BUILD/bin/gmemctl" --socket "$sock" info docs-t)
                [[ $got == docs-test.0 ]] || fail "completion: region names with --socket PATH: got '$got'"
                got=$(complete_line "$BUILD/bin/gmemctl" release --socket = "$sock" '' | tr ' ' '\n' | sort | tr '\n' ' ')
                [[ $got == "docs-other docs-test.0 " ]] || fail "completion: region names with --socket=PATH: got '$got'"
                got=$(COMP_TEST_SOCKET=$sock complete_line "$BUILD/bin/gmemctl" exec docs-test.0 docs-o)
                [[ $got == docs-other ]] || fail "completion: exec region names from \$GMEMD_SOCKET: got '$got'"
                got=$(complete_line "$BUILD/bin/gmemctl" --socket "$sock" info docs-test.0 '')
                [[ -z $got ]] || fail "completion: a second region name offered after info NAME: '$got'"
                ok "completion of region names from a real gmemd"
        else
                fail "could not create regions in a private gmemd: $(cat "$tmp/create.err")"
        fi
        kill -TERM "$gmemd_pid" 2> /dev/null
        wait "$gmemd_pid" 2> /dev/null
        gmemd_pid=
else
        echo "note: $BUILD/bin/gmemd is not built: region-name completion against a real daemon not tried"
fi
ok "completion/gmemctl.bash"

# ---------------------------------------------------------------------------------------------
if ((${#failures[@]})); then
        echo "${#failures[@]} documentation check(s) failed"
        exit 1
fi
if ((!rendered)); then
        echo "groff is not installed (apt-get install groff-base): the man pages were not rendered; everything else passed"
        exit 77
fi
echo "documentation matches the code"
exit 0
