//! `tern check-config`: validates a configuration file and says what it
//! means — clients, upstreams with their effective profile limits, routes —
//! or every error with its file, line and column. Secrets are never shown.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

use crate::config::Config;

/// Exit status for an invalid configuration (EX_CONFIG, sysexits.h).
const EX_CONFIG: u8 = 78;

/// Checks `path`, printing the summary or the errors.
pub fn run(path: &Path) -> ExitCode {
    match Config::load(path) {
        Ok(config) => {
            print!("{}", summary(&config));
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!(
                "{}: {} error(s); nothing applied",
                path.display(),
                errors.0.len()
            );
            ExitCode::from(EX_CONFIG)
        }
    }
}

/// Checks `path`, then asks the daemon at its admin listener (`admin`, or
/// the file's `[admin]`, or the default) what putting it in force would
/// change. The daemon compiles the file itself, with its own environment
/// and files, exactly as a reload would, and answers without applying it.
pub fn run_diff(path: &Path, admin: Option<SocketAddr>) -> ExitCode {
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("{}: {} error(s)", path.display(), errors.0.len());
            return ExitCode::from(EX_CONFIG);
        }
    };
    let Some(admin) = admin
        .or(config.admin)
        .or_else(|| crate::config::DEFAULT_ADMIN.parse().ok())
    else {
        return ExitCode::from(2);
    };
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) => {
            eprintln!("{}: {err}", path.display());
            return ExitCode::from(EX_CONFIG);
        }
    };
    let absolute = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let body = serde_json::json!({ "path": absolute.display().to_string(), "text": text });
    let answer = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|rt| {
            rt.block_on(crate::admin::post_json(admin, "/api/config/diff", &body))
                .map_err(|e| e.to_string())
        });
    let answer = match answer {
        Ok(answer) => answer,
        Err(err) => {
            eprintln!("tern: cannot ask the running daemon at {admin}: {err}");
            return ExitCode::from(2);
        }
    };
    if answer["valid"] != serde_json::Value::Bool(true) {
        eprintln!(
            "the running daemon refuses {}:\n{}",
            path.display(),
            answer["errors"].as_str().unwrap_or("(no reason given)")
        );
        return ExitCode::from(EX_CONFIG);
    }
    let changes = answer["changes"].as_array().cloned().unwrap_or_default();
    if changes.is_empty() {
        println!(
            "{}: no change against the daemon at {admin}",
            path.display()
        );
        return ExitCode::SUCCESS;
    }
    println!(
        "{}: {} change(s) against the daemon at {admin}:",
        path.display(),
        changes.len()
    );
    for change in &changes {
        let sign = match change["kind"].as_str() {
            Some("added") => '+',
            Some("removed") => '-',
            _ => '~',
        };
        let what = change["what"].as_str().unwrap_or("?");
        let detail = change["detail"].as_str().unwrap_or("");
        let restart = if change["restart"] == serde_json::Value::Bool(true) {
            " (takes effect at restart)"
        } else {
            ""
        };
        if detail.is_empty() {
            println!("{sign} {what}{restart}");
        } else {
            println!("{sign} {what}: {detail}{restart}");
        }
    }
    ExitCode::SUCCESS
}

/// What a valid configuration means, for people: one line per thing it
/// sets up, in the order a message meets them.
pub fn summary(config: &Config) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}: valid", config.source.display());
    let _ = writeln!(
        out,
        "node {} (system_id {})",
        config.node_id, config.system_id
    );
    for l in &config.listeners {
        let tls = l
            .tls
            .as_ref()
            .map_or("plain".to_owned(), |t| format!("TLS >= {}", t.min_version));
        let _ = writeln!(out, "listener {} ({tls})", l.address);
    }
    write_store(&mut out, config);
    write_client_sessions(&mut out, config);
    write_clients(&mut out, config);
    write_upstreams(&mut out, config);
    write_routes(&mut out, config);
    out
}

/// Where messages are kept, and for how long once finished.
fn write_store(out: &mut String, config: &Config) {
    match &config.backend {
        crate::config::Backend::Sled => {
            let _ = writeln!(
                out,
                "store {} ({:?}), finished messages kept {}",
                config.store_path.display(),
                config.store.durability,
                humantime::format_duration(config.retention)
            );
        }
        crate::config::Backend::Redis(r) => {
            let _ =
                writeln!(
                out,
                "store Redis {} {} (prefix {:?}, {:?}, {}), leases {}, finished messages kept {}",
                if r.cluster { "cluster" } else { "server" },
                r.addresses.join(", "),
                r.prefix,
                r.durability,
                if r.password.is_some() { "password set" } else { "no password" },
                humantime::format_duration(r.lease_ttl),
                humantime::format_duration(config.retention)
            );
            if let Some(ca) = &r.tls_ca {
                let _ = writeln!(
                    out,
                    "  rediss:// servers must chain to {}",
                    ca.path.display()
                );
            }
        }
    }
}

/// The session settings every client session gets.
fn write_client_sessions(out: &mut String, config: &Config) {
    let sessions = &config.client_sessions;
    let every = |d: Option<std::time::Duration>| {
        d.map_or("off".to_owned(), |d| {
            humantime::format_duration(d).to_string()
        })
    };
    let _ = writeln!(
        out,
        "client sessions: window {}, response timeout {}, enquire_link {}, inactivity timeout {}, bind within {}, max command_length {}",
        sessions.window,
        humantime::format_duration(sessions.response_timeout),
        every(sessions.enquire_link_interval),
        every(sessions.inactivity_timeout),
        humantime::format_duration(sessions.session_init_timeout),
        sessions.max_command_length
    );
}

/// Each client account: credentials, limits, where it may connect from,
/// how it is answered, and its distribution lists.
fn write_clients(out: &mut String, config: &Config) {
    for c in &config.clients {
        let _ = writeln!(
            out,
            "client {}: {} password(s), binds {}, as {}, rate {}/s per account, {}/s per session, window {}, from {}, {}",
            c.system_id,
            c.passwords.len(),
            c.max_binds
                .map_or("unlimited".to_owned(), |n| n.to_string()),
            c.binds.names().join(", "),
            c.rate.map_or("-".to_owned(), |n| n.to_string()),
            c.session_rate.map_or("-".to_owned(), |n| n.to_string()),
            c.window.map_or("-".to_owned(), |n| n.to_string()),
            if c.allowed_ips.is_empty() {
                "anywhere".to_owned()
            } else {
                c.allowed_ips
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            c.transaction.map_or("store-and-forward".to_owned(), |t| format!(
                "transaction mode (answered within {})",
                humantime::format_duration(t)
            )),
        );
        if c.id_format != tern_storage::IdFormat::default() {
            let _ = writeln!(
                out,
                "client {}: message ids in {}",
                c.system_id, c.id_format
            );
        }
        for (name, members) in &c.distribution_lists {
            let _ = writeln!(
                out,
                "  distribution list {name:?} (submit_multi): {} member(s)",
                members.len()
            );
        }
    }
}

/// Each upstream: where, as whom, its profile and the limits in force.
fn write_upstreams(out: &mut String, config: &Config) {
    for u in &config.upstreams {
        let p = &u.profile;
        let _ = writeln!(
            out,
            "upstream {} -> {}:{} as {} ({}), profile {}: sessions {} (vendor allows {}), window {}, rate {}, {}",
            u.name,
            u.host,
            u.port,
            u.bind.system_id,
            u.bind.bind_type.name(),
            p.name,
            u.sessions,
            p.limits.sessions_per_credential.map_or("any".to_owned(), |n| n.to_string()),
            u.window,
            u.rate.map(|r| format!("{r}/s")).or(p.limits.rate_per_session.map(|r| format!("{r}/s per session"))).unwrap_or_else(|| "-".to_owned()),
            u.tls.as_ref().map_or("plain".to_owned(), |t| format!("TLS >= {}", t.min_version)),
        );
        let _ = writeln!(out, "  {}", upstream_limits(p));
    }
}

/// Each route: the destinations it takes, its upstreams and conditions.
fn write_routes(out: &mut String, config: &Config) {
    for r in config.table.rules() {
        let prefixes = if r.prefixes.is_empty() {
            "any destination".to_owned()
        } else {
            r.prefixes.join(", ")
        };
        let ups: Vec<String> = r
            .upstreams
            .iter()
            .map(|u| format!("{} (priority {}, weight {})", u.name, u.priority, u.weight))
            .collect();
        let _ = writeln!(
            out,
            "route {}: {prefixes} -> {} [{:?}]",
            r.name,
            ups.join(", "),
            r.strategy
        );
        let conditions: Vec<String> = r
            .conditions()
            .into_iter()
            .map(|(c, v)| format!("{} {v}", c.key()))
            .collect();
        if !conditions.is_empty() {
            let _ = writeln!(out, "  when: {}", conditions.join("; "));
        }
    }
}

/// The rest of a vendor's limits Tern keeps towards it, as in force: the
/// session timers (the profile's, within Tern's own) and the lengths it
/// splits and refuses by. Only what the profile states or Tern applies;
/// facts Tern has nothing to decide by stay in the profile's notes.
fn upstream_limits(p: &tern_router::Profile) -> String {
    let session = p
        .timers
        .session_config(tern_session::SessionConfig::default());
    let mut limits = vec![
        format!(
            "enquire_link every {}",
            session
                .enquire_link_interval
                .map_or("off".to_owned(), |d| humantime::format_duration(d)
                    .to_string())
        ),
        format!(
            "response timeout {}",
            humantime::format_duration(session.response_timeout)
        ),
    ];
    if let Some(n) = p.limits.short_message_max {
        limits.push(format!("short_message at most {n} octets"));
    }
    if let Some(n) = p.limits.message_payload_max {
        limits.push(format!("message_payload at most {n} octets"));
    }
    if let Some(n) = p.long_messages.max_parts {
        limits.push(format!("at most {n} parts"));
    }
    format!("limits: {}", limits.join(", "))
}
