# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_tern_global_optspecs
    string join \n h/help V/version
end

function __fish_tern_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_tern_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_tern_using_subcommand
    set -l cmd (__fish_tern_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c tern -n "__fish_tern_needs_command" -s h -l help -d 'Print help'
complete -c tern -n "__fish_tern_needs_command" -s V -l version -d 'Print version'
complete -c tern -n "__fish_tern_needs_command" -f -a "decode" -d 'Decode SMPP PDUs given in hex (spaces and colons allowed), as copied from a packet capture or a log; several PDUs may follow each other'
complete -c tern -n "__fish_tern_needs_command" -f -a "run" -d 'Run the broker. Without --config, the embedded default: a `demo` client on 127.0.0.1:2775, a store in ./data, and two sandbox upstreams started in-process, one failing over to the other (only in a build with the `sandbox` feature, the default)'
complete -c tern -n "__fish_tern_needs_command" -f -a "check-config" -d 'Validate a configuration file and print what it means (clients, upstreams with their effective vendor limits, routes), or every error with file, line and column. Exits 78 when the file is invalid'
complete -c tern -n "__fish_tern_needs_command" -f -a "send" -d 'Send one message through Tern (or any SMSC) and wait for its delivery receipt: bind, submit, print the id, the receipt, unbind'
complete -c tern -n "__fish_tern_needs_command" -f -a "status" -d 'Show a running daemon\'s readiness, sessions, upstreams, queues and last reload, read from its admin endpoint'
complete -c tern -n "__fish_tern_needs_command" -f -a "trace" -d 'One message\'s whole story from a running daemon: client, attempts (upstream, time, status, upstream ids per part), each receipt as received and as relayed, outcome. Exits 1 if the id is unknown'
complete -c tern -n "__fish_tern_needs_command" -f -a "check-store" -d 'Report on a stopped store without starting the daemon: messages by state, receipts held, outbox items, the write-ahead log, and any damage (file, offset). Exits 0 healthy, 1 damaged, 2 no store or in use by a daemon'
complete -c tern -n "__fish_tern_needs_command" -f -a "route-test" -d 'Which route a sample message takes under a configuration, and why: the rules tried before it with the condition that failed, the conditions that matched, the upstream order. Exits 1 on no route'
complete -c tern -n "__fish_tern_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c tern -n "__fish_tern_using_subcommand decode" -s h -l help -d 'Print help'
complete -c tern -n "__fish_tern_using_subcommand run" -l config -d 'The configuration file' -r -F
complete -c tern -n "__fish_tern_using_subcommand run" -l listening-file -d 'Once every listener is bound, write where to FILE, one line each: `client ADDRESS` per [[listener]] in order, then `admin ADDRESS`, then `http ADDRESS` per [[http_listener]]. For a configuration with port 0 (any free port), as the end-to-end tests use' -r -F
complete -c tern -n "__fish_tern_using_subcommand run" -s h -l help -d 'Print help'
complete -c tern -n "__fish_tern_using_subcommand check-config" -l admin -d 'The running daemon\'s admin listener (default: the file\'s `[admin] address`, else 127.0.0.1:9775)' -r
complete -c tern -n "__fish_tern_using_subcommand check-config" -l diff -d 'Also show what putting the file in force would change against the running daemon (accounts, upstreams, routes, and what needs a restart), asked at its admin listener; nothing is applied'
complete -c tern -n "__fish_tern_using_subcommand check-config" -s h -l help -d 'Print help'
complete -c tern -n "__fish_tern_using_subcommand send" -l to -d 'Destination number, international format (a leading + is dropped)' -r
complete -c tern -n "__fish_tern_using_subcommand send" -l text -d 'The message text; GSM 7-bit when it fits the alphabet, else UCS-2; split into concatenated parts when too long for one SMS' -r
complete -c tern -n "__fish_tern_using_subcommand send" -l from -d 'Sender: digits for a number, anything else is sent as alphanumeric' -r
complete -c tern -n "__fish_tern_using_subcommand send" -l host -d 'Tern\'s (or any SMSC\'s) host' -r
complete -c tern -n "__fish_tern_using_subcommand send" -l port -d 'Its SMPP port' -r
complete -c tern -n "__fish_tern_using_subcommand send" -l system-id -d 'The account to bind as' -r
complete -c tern -n "__fish_tern_using_subcommand send" -l password -d 'The account\'s password; default: $TERN_PASSWORD, else "demo". Prefer the environment: a command line is visible to other users' -r
complete -c tern -n "__fish_tern_using_subcommand send" -l tls-ca -d 'Extra CA certificate (PEM) to trust with --tls, e.g. a test CA' -r -F
complete -c tern -n "__fish_tern_using_subcommand send" -l tls-server-name -d 'Name to verify the certificate against, when not --host' -r
complete -c tern -n "__fish_tern_using_subcommand send" -l timeout -d 'Give up (exit 2) when bind, submit and receipt take longer than this' -r
complete -c tern -n "__fish_tern_using_subcommand send" -l tls -d 'Connect with TLS (verified against the Mozilla roots and --tls-ca)'
complete -c tern -n "__fish_tern_using_subcommand send" -l no-receipt -d 'Do not ask for a delivery receipt: exit once the submit is answered'
complete -c tern -n "__fish_tern_using_subcommand send" -s h -l help -d 'Print help'
complete -c tern -n "__fish_tern_using_subcommand status" -l admin -d 'The daemon\'s admin endpoint (`[admin] address` in its configuration)' -r
complete -c tern -n "__fish_tern_using_subcommand status" -l json -d 'Print everything as one JSON object instead of tables'
complete -c tern -n "__fish_tern_using_subcommand status" -s h -l help -d 'Print help'
complete -c tern -n "__fish_tern_using_subcommand trace" -l admin -d 'The daemon\'s admin endpoint (`[admin] address` in its configuration)' -r
complete -c tern -n "__fish_tern_using_subcommand trace" -l json -d 'Print the message\'s JSON as the daemon gives it'
complete -c tern -n "__fish_tern_using_subcommand trace" -s h -l help -d 'Print help'
complete -c tern -n "__fish_tern_using_subcommand check-store" -l repair -d 'Cut a torn write-ahead log tail (a record cut short or failing its checksum at the very end: never acknowledged). Other damage is only reported'
complete -c tern -n "__fish_tern_using_subcommand check-store" -s h -l help -d 'Print help'
complete -c tern -n "__fish_tern_using_subcommand route-test" -l client -d 'The client\'s system_id' -r
complete -c tern -n "__fish_tern_using_subcommand route-test" -l to -d 'The destination address' -r
complete -c tern -n "__fish_tern_using_subcommand route-test" -l from -d 'The source address' -r
complete -c tern -n "__fish_tern_using_subcommand route-test" -l priority -d 'The priority_flag' -r
complete -c tern -n "__fish_tern_using_subcommand route-test" -l data-coding -d 'The data_coding (decimal, or hex with 0x)' -r
complete -c tern -n "__fish_tern_using_subcommand route-test" -l esm-class -d 'The esm_class (decimal, or hex with 0x: 0x40 for a UDH)' -r
complete -c tern -n "__fish_tern_using_subcommand route-test" -l service-type -d 'The service_type' -r
complete -c tern -n "__fish_tern_using_subcommand route-test" -l at -d 'The instant to route at, RFC 3339 ("2026-03-29T08:30:00+02:00"); now when absent' -r
complete -c tern -n "__fish_tern_using_subcommand route-test" -l config -d 'The configuration file; the embedded default when absent' -r -F
complete -c tern -n "__fish_tern_using_subcommand route-test" -s h -l help -d 'Print help'
complete -c tern -n "__fish_tern_using_subcommand help; and not __fish_seen_subcommand_from decode run check-config send status trace check-store route-test help" -f -a "decode" -d 'Decode SMPP PDUs given in hex (spaces and colons allowed), as copied from a packet capture or a log; several PDUs may follow each other'
complete -c tern -n "__fish_tern_using_subcommand help; and not __fish_seen_subcommand_from decode run check-config send status trace check-store route-test help" -f -a "run" -d 'Run the broker. Without --config, the embedded default: a `demo` client on 127.0.0.1:2775, a store in ./data, and two sandbox upstreams started in-process, one failing over to the other (only in a build with the `sandbox` feature, the default)'
complete -c tern -n "__fish_tern_using_subcommand help; and not __fish_seen_subcommand_from decode run check-config send status trace check-store route-test help" -f -a "check-config" -d 'Validate a configuration file and print what it means (clients, upstreams with their effective vendor limits, routes), or every error with file, line and column. Exits 78 when the file is invalid'
complete -c tern -n "__fish_tern_using_subcommand help; and not __fish_seen_subcommand_from decode run check-config send status trace check-store route-test help" -f -a "send" -d 'Send one message through Tern (or any SMSC) and wait for its delivery receipt: bind, submit, print the id, the receipt, unbind'
complete -c tern -n "__fish_tern_using_subcommand help; and not __fish_seen_subcommand_from decode run check-config send status trace check-store route-test help" -f -a "status" -d 'Show a running daemon\'s readiness, sessions, upstreams, queues and last reload, read from its admin endpoint'
complete -c tern -n "__fish_tern_using_subcommand help; and not __fish_seen_subcommand_from decode run check-config send status trace check-store route-test help" -f -a "trace" -d 'One message\'s whole story from a running daemon: client, attempts (upstream, time, status, upstream ids per part), each receipt as received and as relayed, outcome. Exits 1 if the id is unknown'
complete -c tern -n "__fish_tern_using_subcommand help; and not __fish_seen_subcommand_from decode run check-config send status trace check-store route-test help" -f -a "check-store" -d 'Report on a stopped store without starting the daemon: messages by state, receipts held, outbox items, the write-ahead log, and any damage (file, offset). Exits 0 healthy, 1 damaged, 2 no store or in use by a daemon'
complete -c tern -n "__fish_tern_using_subcommand help; and not __fish_seen_subcommand_from decode run check-config send status trace check-store route-test help" -f -a "route-test" -d 'Which route a sample message takes under a configuration, and why: the rules tried before it with the condition that failed, the conditions that matched, the upstream order. Exits 1 on no route'
complete -c tern -n "__fish_tern_using_subcommand help; and not __fish_seen_subcommand_from decode run check-config send status trace check-store route-test help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
