# bash completion for gmemctl(1)                          -*- shell-script -*-
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Commands, each command's options, the values of --backend, --policy and --page-size, users and
# groups for --uid/--gid, files for --from, --to, --listen and --socket, and region names (job numbers for
# `cancel`) asked of gmemd with `gmemctl --json list` on the socket given earlier on the line. That
# query runs under a 2-second timeout, so a missing or stuck daemon costs at most that and completes
# nothing. Needs only bash itself (the bash-completion package is not required).

# The options each command takes, besides --socket and --json (which every command takes).
_gmemctl_command_options() {
        case $1 in
        create) echo "--size --backend --page-size --prefault --policy" ;;
        populate) echo "--from --offset --src-offset --length --clip" ;;
        prefault | punch) echo "--offset --length" ;;
        dump) echo "--to --offset --length" ;;
        snapshot) echo "--to" ;;
        firecracker) echo "--listen --from --raw --no-prefetch --timeout" ;;
        restore) echo "--from --backend --policy" ;;
        grant | revoke) echo "--uid --gid" ;;
        esac
}

# Options that take a value (as a separate word or after '=').
_gmemctl_takes_value() {
        case $1 in
        --socket | --size | --backend | --page-size | --policy | --from | --to | --offset | --src-offset | \
                --length | --uid | --gid | --listen | --timeout) return 0 ;;
        esac
        return 1
}

# Region names (what=name) or running job numbers (what=job) from gmemd; nothing on any failure.
_gmemctl_query() {
        local ctl=$1 socket=$2 what=$3 out
        local -a run=()

        [[ $ctl == "~/"* ]] && ctl=$HOME/${ctl#"~/"}
        [[ $socket == "~/"* ]] && socket=$HOME/${socket#"~/"}
        if [[ $ctl != */* ]]; then
                ctl=$(type -P -- "$ctl" 2> /dev/null) || return 0
        fi
        [[ -x $ctl ]] || return 0
        type -P timeout > /dev/null 2>&1 && run=(timeout 2)
        out=$("${run[@]}" "$ctl" ${socket:+--socket "$socket"} --json list 2> /dev/null < /dev/null) || return 0
        # gmemd's JSON: region objects with "name":"..." (names are [A-Za-z0-9._-]), and in their
        # "jobs" arrays objects with "job":N; nothing else in a region carries those keys.
        case $what in
        name) printf '%s\n' "$out" | grep -o '"name":"[A-Za-z0-9._-]*"' | sed 's/^"name":"//; s/"$//' ;;
        job) printf '%s\n' "$out" | grep -o '"job":[0-9]*' | sed 's/^"job"://' ;;
        esac
}

# COMPREPLY from a compgen command, one candidate per line (file names may contain spaces).
_gmemctl_reply() {
        mapfile -t COMPREPLY < <("$@")
}

_gmemctl() {
        local cword=$COMP_CWORD cur=${COMP_WORDS[COMP_CWORD]} opt="" command="" socket=""
        local commands="caps create list info populate prefault dump snapshot restore firecracker punch grant revoke release cancel watch exec help"
        local i w n_pos=0 after_dashdash=0 dashdash_at=0
        local IFS=$' \t\n'

        COMPREPLY=()

        # The value of an option: "--opt VALUE", "--opt=VALUE" (bash splits it into --opt = VALUE).
        if [[ $cur == "=" && $cword -ge 2 && ${COMP_WORDS[cword - 1]} == --* ]]; then
                opt=${COMP_WORDS[cword - 1]}
                cur=""
        elif [[ $cword -ge 3 && ${COMP_WORDS[cword - 1]} == "=" && ${COMP_WORDS[cword - 2]} == --* ]]; then
                opt=${COMP_WORDS[cword - 2]}
        elif [[ $cword -ge 2 ]] && _gmemctl_takes_value "${COMP_WORDS[cword - 1]}"; then
                opt=${COMP_WORDS[cword - 1]}
        fi

        # What came before: the command, --socket, positional arguments, exec's "--".
        i=1
        while ((i < cword)); do
                w=${COMP_WORDS[i]}
                if ((after_dashdash)); then
                        ((i++))
                        continue
                fi
                if [[ $w == --* && ${COMP_WORDS[i + 1]} == "=" ]] && ((i + 1 < cword)); then
                        [[ $w == --socket ]] && ((i + 2 < cword)) && socket=${COMP_WORDS[i + 2]}
                        ((i += 3))
                        continue
                fi
                if [[ $w == "--" && $command == exec ]]; then
                        after_dashdash=1
                        dashdash_at=$i
                        ((i++))
                        continue
                fi
                if _gmemctl_takes_value "$w"; then
                        [[ $w == --socket ]] && ((i + 1 < cword)) && socket=${COMP_WORDS[i + 1]}
                        ((i += 2))
                        continue
                fi
                if [[ $w == -* ]]; then
                        ((i++))
                        continue
                fi
                if [[ -z $command ]]; then
                        command=$w
                else
                        ((n_pos++))
                fi
                ((i++))
        done

        # exec: after "--", the command to run and then its arguments
        if ((after_dashdash)); then
                if ((cword == dashdash_at + 1)); then
                        mapfile -t COMPREPLY < <(compgen -c -- "$cur" | sort -u)
                else
                        compopt -o filenames 2> /dev/null
                        _gmemctl_reply compgen -f -- "$cur"
                fi
                return 0
        fi

        if [[ -n $opt ]]; then
                case $opt in
                --backend) _gmemctl_reply compgen -W "memfd hugetlb secret" -- "$cur" ;;
                --policy) _gmemctl_reply compgen -W "keep connection" -- "$cur" ;;
                --page-size) _gmemctl_reply compgen -W "2M 1G" -- "$cur" ;;
                --uid) _gmemctl_reply compgen -u -- "$cur" ;;
                --gid) _gmemctl_reply compgen -g -- "$cur" ;;
                --from | --to | --socket | --listen)
                        compopt -o filenames 2> /dev/null
                        _gmemctl_reply compgen -f -- "$cur"
                        ;;
                esac
                # sizes, offsets and lengths: nothing to offer
                return 0
        fi

        if [[ -z $command ]]; then
                if [[ $cur == -* ]]; then
                        _gmemctl_reply compgen -W "--socket --user --json -j --no-legend --help -h --version" -- "$cur"
                else
                        _gmemctl_reply compgen -W "$commands" -- "$cur"
                fi
                return 0
        fi

        if [[ $cur == -* ]]; then
                case $command in
                exec) _gmemctl_reply compgen -W "--socket --user --json --no-legend --help --" -- "$cur" ;;
                caps | create | list | info | populate | prefault | dump | snapshot | restore | firecracker | punch | grant | \
                        revoke | release | cancel | watch)
                        _gmemctl_reply compgen -W "--socket --user --json --no-legend --help $(_gmemctl_command_options "$command")" -- "$cur"
                        ;;
                esac
                return 0
        fi

        case $command in
        info | populate | prefault | dump | snapshot | punch | grant | revoke | release)
                ((n_pos == 0)) && _gmemctl_reply compgen -W "$(_gmemctl_query "${COMP_WORDS[0]}" "$socket" name)" -- "$cur"
                ;;
        exec)
                _gmemctl_reply compgen -W "$(_gmemctl_query "${COMP_WORDS[0]}" "$socket" name)" -- "$cur"
                ;;
        cancel)
                ((n_pos == 0)) && _gmemctl_reply compgen -W "$(_gmemctl_query "${COMP_WORDS[0]}" "$socket" job)" -- "$cur"
                ;;
        help)
                ((n_pos == 0)) && _gmemctl_reply compgen -W "${commands% help}" -- "$cur"
                ;;
        esac
        return 0
}

complete -F _gmemctl gmemctl
