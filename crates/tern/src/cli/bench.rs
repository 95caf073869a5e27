//! `tern bench`: what Tern costs on this machine, in one run.
//!
//! The same load (the `tern-sim` load generator: N transceiver sessions, W
//! submits in flight on each, receipts requested) is run twice against one
//! in-process simulator: (a) straight at it, and (b) through a real Tern
//! daemon — this binary's `run`, started as a child process with a
//! temporary configuration (durable store, one client account, one upstream
//! pointing at the simulator, a catch-all route, loopback only). Comparing
//! the two gives Tern's throughput relative to the direct path and the
//! latency it adds; sampling the child's `/proc` entries while (b) runs
//! gives its peak memory and CPU.
//!
//! Both runs share this process with the simulator, and the daemon runs
//! beside them, so on a small machine all three compete for the same cores:
//! the report names the machine so figures are read in that light.
//!
//! With `--redis` the daemon keeps its messages in that Redis server
//! instead of a sled directory, and with `--nodes N` run (b) goes through N
//! daemons sharing it, as a cluster would: the load generator's sessions
//! are spread over the nodes round robin, and the upstream sessions are
//! leases the nodes share, so `--upstream-sessions` stays the total. Tern's
//! CPU is then summed over the nodes and its peak memory is the largest
//! node's. With `--redis` the report also gives each node's CPU per
//! message and the Redis server's own (its `INFO cpu`, read before and
//! after run (b)): the figures a projection to N machines starts from. All
//! nodes run on this one machine, so this measures what the shared store
//! costs, not how Tern scales out.
//!
//! Everything is bounded: each load run by its message count and the
//! overall deadline, every wait for the daemon by the same deadline, the
//! daemon's stop by a grace period after which it is killed.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use futures::future::join_all;
use serde::Serialize;
use tern_sim::load::{self, LatencySummary, LoadReport, StopReason};
use tern_sim::{Behaviour, LoadConfig, ReceiptBehaviour, SimConfig, SimHandle, Simulator};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::ms;

/// How the daemon's store writes, as `[storage] durability` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Every acknowledged submit is flushed to disk first (the default).
    Durable,
    /// Flushed on an interval.
    Fast,
}

impl Durability {
    fn name(self) -> &'static str {
        match self {
            Durability::Durable => "durable",
            Durability::Fast => "fast",
        }
    }
}

/// `tern bench`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit status: 0 when both runs completed (every message answered and, with \
                  receipts, every receipt in), 1 when a run stopped early, 2 on an error."
)]
pub struct BenchArgs {
    /// Sending sessions (transceivers) of the load generator, in each run.
    #[arg(long, default_value_t = 4)]
    pub sessions: usize,
    /// Submits in flight per session; also the window of each session Tern
    /// binds to the simulator, so both paths may have as much in flight.
    #[arg(long, default_value_t = 50)]
    pub window: usize,
    /// Messages per run.
    #[arg(long, default_value_t = 20_000)]
    pub messages: u64,
    /// Ask for a receipt for every message and wait for them (the default).
    #[arg(long, overrides_with = "no_receipts")]
    pub receipts: bool,
    /// Submit only; no receipts.
    #[arg(long, overrides_with = "receipts")]
    pub no_receipts: bool,
    /// Messages per second over all sessions (default: as fast as answers
    /// come). A rate at half the unthrottled throughput shows the latency
    /// Tern adds when it is not saturated.
    #[arg(long)]
    pub rate: Option<u32>,
    /// The simulator's delay between a submit_sm_resp and its receipt.
    #[arg(long, default_value = "10ms", value_parser = super::parse_duration)]
    pub receipt_delay: Duration,
    /// Characters per message (GSM 7-bit).
    #[arg(long, default_value_t = 40)]
    pub text_len: usize,
    /// Sessions Tern binds to the simulator.
    #[arg(long, default_value_t = 4)]
    pub upstream_sessions: usize,
    /// The daemon's store durability (sled; with `--redis` the Redis
    /// server's `appendfsync always` makes every write durable).
    #[arg(long, value_enum, default_value_t = Durability::Durable)]
    pub store: Durability,
    /// Tern nodes in run (b). More than one needs `--redis`: nodes share
    /// their messages and upstream sessions through it. With `--redis` the
    /// report gives each node's CPU per message and the Redis server's
    /// (from its `INFO cpu`).
    #[arg(long, default_value_t = 1)]
    pub nodes: usize,
    /// Keep the daemons' messages in this Redis server
    /// (`redis://host:port`) instead of a sled directory. It must run with
    /// `appendonly yes` and `appendfsync always` (the daemon refuses to
    /// start otherwise). Each bench writes under a new key prefix and
    /// leaves its keys behind: use a scratch server.
    #[arg(long)]
    pub redis: Option<String>,
    /// The whole bench, both runs and the daemon's start and stop, ends by
    /// this at the latest.
    #[arg(long, default_value = "120s", value_parser = super::parse_duration)]
    pub deadline: Duration,
    /// Keep the daemon's temporary directory (configuration, store, log)
    /// and print where it is.
    #[arg(long)]
    pub keep: bool,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Also run (c): the same number of messages through Tern's HTTP API
    /// (`POST /v1/messages`, sessions × window requests in flight, no
    /// receipts), with its submits/s and Tern's CPU per message beside the
    /// SMPP run's.
    #[arg(long)]
    pub http: bool,
}

impl BenchArgs {
    fn receipts_on(&self) -> bool {
        !self.no_receipts
    }

    fn backend(&self) -> Backend {
        if self.redis.is_some() {
            Backend::Redis
        } else {
            Backend::Sled
        }
    }

    /// Refuses, before anything starts, settings that cannot run or would
    /// measure something other than what they say.
    fn check(&self) -> anyhow::Result<()> {
        if self.sessions == 0 || self.window == 0 || self.messages == 0 {
            bail!("--sessions, --window and --messages must be at least 1");
        }
        if self.nodes == 0 || u16::try_from(self.nodes).is_err() {
            bail!("--nodes must be between 1 and {}", u16::MAX);
        }
        match &self.redis {
            None if self.nodes > 1 => bail!(
                "--nodes {} needs --redis URL: nodes share their messages and upstream \
                 sessions through a Redis store (a sled store belongs to one process)",
                self.nodes
            ),
            None => {}
            Some(url) => {
                if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                    bail!("--redis {url:?}: expected an address like redis://127.0.0.1:6379");
                }
                if self.store == Durability::Fast {
                    bail!(
                        "--store fast is for the sled store; with --redis every write is \
                         made durable by the server (appendfsync always)"
                    );
                }
            }
        }
        Ok(())
    }
}

/// Where the daemons keep their messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Backend {
    /// A sled directory of its own (one node).
    Sled,
    /// One Redis server shared by the nodes.
    Redis,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Sled => "sled",
            Backend::Redis => "redis",
        }
    }
}

/// One node's share of a Redis-backed run: the server, the key prefix of
/// this run, and the node's id (distinct per node: it tells apart their
/// claims and leases in the shared store).
#[derive(Debug, Clone, Copy)]
struct RedisNode<'a> {
    url: &'a str,
    prefix: &'a str,
    id: u16,
}

/// Runs `tern bench`.
pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    super::init_tool_logging();
    super::runtime()?.block_on(bench(args))
}

/// The account the load generator binds to Tern with.
const CLIENT: &str = "bench";
/// The account Tern binds to the simulator with (the simulator accepts
/// any; the name tells its sessions apart from the direct run's).
const UPSTREAM_ACCOUNT: &str = "tern-bench";
/// How long the daemon gets to stop after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(15);
/// How often the daemon's memory is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(50);
/// `[storage.redis] lease_ttl` of the nodes, in seconds: the daemon's
/// default; the nodes never die during a bench, so it only sets how often
/// they renew, and how soon the upstream sessions spread over them.
const LEASE_TTL_S: u64 = 10;

/// The bench: (a) the load generator straight at the simulator, then (b)
/// through Tern's nodes to the same simulator, and the report comparing
/// them with what the nodes used.
async fn bench(args: BenchArgs) -> anyhow::Result<ExitCode> {
    args.check()?;
    let deadline = Instant::now() + args.deadline;
    let load_before = load_average();
    let sim = start_simulator(&args).await?;

    progress(&format!(
        "(a) load generator → simulator at {}: {} message(s)…",
        sim.addr(),
        args.messages
    ));
    let clock = clock_ticks_per_second();
    let (own_before_a, steal_before_a) = (cpu_ticks("self"), MachineTicks::read());
    let direct = load::run(load_config(&args, sim.addr(), "load", deadline)?)
        .await
        .context("(a) direct run")?;
    let (own_after_a, steal_after_a) = (cpu_ticks("self"), MachineTicks::read());

    let work = WorkDir::create(args.keep)?;
    let (mut daemons, http_port) = start_nodes(&args, &work.path, sim.addr()).await?;
    wait_spread(&mut daemons, &sim, args.upstream_sessions, deadline).await?;

    progress(&format!(
        "(b) load generator → tern → simulator: {} message(s)…",
        args.messages
    ));
    let tern_addrs: Vec<SocketAddr> = daemons
        .iter()
        .map(|d| SocketAddr::from(([127, 0, 0, 1], d.port)))
        .collect();
    let Some((&first_node, more_nodes)) = tern_addrs.split_first() else {
        bail!("no tern node was started");
    };
    let pids: Vec<u32> = daemons.iter().map(|d| d.pid).collect();
    let stop_sampling = CancellationToken::new();
    let sampler = tokio::spawn(sample_rss(pids.clone(), stop_sampling.clone(), deadline));
    let scale_before = CpuReading::take(&pids, args.redis.as_deref()).await;
    let own_before = cpu_ticks("self");
    let steal_before = MachineTicks::read();
    let started = Instant::now();
    // The client's sessions spread over the nodes, as clients of a cluster
    // behind several addresses would be.
    let through = load::run(LoadConfig {
        more_addrs: more_nodes.to_vec(),
        ..load_config(&args, first_node, CLIENT, deadline)?
    })
    .await;
    let wall_s = started.elapsed().as_secs_f64();
    let own_after = cpu_ticks("self");
    let steal_after = MachineTicks::read();
    let scale_after = CpuReading::take(&pids, args.redis.as_deref()).await;
    let memories: Vec<Option<Memory>> = pids.iter().map(|pid| memory(*pid)).collect();
    stop_sampling.cancel();
    let max_rss_kb = sampler.await.unwrap_or_default();
    let through = match through {
        Ok(report) => report,
        Err(err) => {
            let logs = logs_tail(&daemons);
            return Err(anyhow!(err).context(format!("(b) run through tern; {logs}")));
        }
    };
    let (http, stopped) = http_and_stop(&args, &mut daemons, http_port, clock, deadline).await?;
    let sim_stats = sim.stats();
    sim.shutdown().await;
    if args.keep {
        progress(&format!("kept {}", work.path.display()));
    }

    let ticks = |before: Option<u64>, after: Option<u64>| match (before, after) {
        (Some(b), Some(a)) => Some(a.saturating_sub(b) as f64 / clock),
        _ => None,
    };
    let cpu_s = ticks(scale_before.total(), scale_after.total());
    // Through the stop: only when run (c) did not come between.
    let cpu_s_through_stop = http
        .is_none()
        .then(|| scale_before.until_exit(&stopped, clock))
        .flatten();
    let report = BenchReport {
        settings: Settings::of(&args),
        machine: Machine::now(load_before),
        ratio: ratio(through.submits_per_s, direct.submits_per_s),
        receipt_ratio: args
            .receipts_on()
            .then(|| ratio(through.receipts_per_s, direct.receipts_per_s)),
        added_p99_submit_ms: ms(through.submit_latency.p99_us) - ms(direct.submit_latency.p99_us),
        added_p99_receipt_ms: args
            .receipts_on()
            .then(|| ms(through.receipt_latency.p99_us) - ms(direct.receipt_latency.p99_us)),
        tern: TernUsage {
            memory: TernMemory::of(&memories, &max_rss_kb),
            cpu_s,
            cpu_s_through_stop,
            wall_s,
            cpu_percent: cpu_s.map(|c| 100.0 * c / wall_s.max(1e-9)),
            stopped_cleanly: stopped.iter().all(|s| s.clean),
        },
        bench_process_cpu_s: ticks(own_before, own_after),
        direct_cpu_s: ticks(own_before_a, own_after_a),
        steal_percent: [
            MachineTicks::steal_percent(steal_before_a, steal_after_a),
            MachineTicks::steal_percent(steal_before, steal_after),
        ],
        scale_out: ScaleOut::between(&scale_before, &scale_after, clock, args.messages),
        simulator_submits: sim_stats.submits,
        simulator_receipts_acked: sim_stats.receipts_acked,
        completed: direct.stopped_by == StopReason::Completed
            && through.stopped_by == StopReason::Completed
            && http.as_ref().is_none_or(|h| h.completed),
        http,
        direct,
        through_tern: through,
    };
    report.print(args.json)?;
    Ok(report.exit_code())
}

/// Run (c), `--http`: the HTTP API of the first node at `port`, with the
/// nodes' CPU read around it (`None` without `--http`: no port); then the
/// nodes stopped ([`stop_nodes`]).
async fn http_and_stop(
    args: &BenchArgs,
    daemons: &mut [Daemon],
    port: Option<u16>,
    clock: f64,
    deadline: Instant,
) -> anyhow::Result<(Option<super::bench_http::HttpRun>, Vec<Stopped>)> {
    let Some(port) = port else {
        return Ok((None, stop_nodes(daemons).await));
    };
    let pids: Vec<u32> = daemons.iter().map(|d| d.pid).collect();
    progress(&format!(
        "(c) HTTP client → tern's HTTP API → simulator: {} message(s)…",
        args.messages
    ));
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let cpu = || CpuReading::nodes(&pids).total().map(|t| t as f64 / clock);
    let run = super::bench_http::run(
        addr,
        args.messages,
        args.sessions.max(1) * args.window.max(1),
        args.text_len,
        deadline,
        cpu,
    );
    let run = run.await.context("(c) HTTP run")?;
    Ok((Some(run), stop_nodes(daemons).await))
}

/// The simulator both runs send to, delaying its receipts as asked.
async fn start_simulator(args: &BenchArgs) -> anyhow::Result<SimHandle> {
    Simulator::start(SimConfig {
        behaviour: Behaviour {
            receipts: ReceiptBehaviour {
                delay: args.receipt_delay,
                ..ReceiptBehaviour::default()
            },
            ..Behaviour::default()
        },
        ..SimConfig::default()
    })
    .await
    .context("starting the simulator")
}

impl Settings {
    /// The settings of this bench, as the report states them.
    fn of(args: &BenchArgs) -> Self {
        Self {
            sessions: args.sessions,
            window: args.window,
            messages: args.messages,
            receipts: args.receipts_on(),
            rate: args.rate,
            receipt_delay_ms: args.receipt_delay.as_secs_f64() * 1000.0,
            text_len: args.text_len,
            upstream_sessions: args.upstream_sessions,
            store: args.store,
            nodes: args.nodes,
            backend: args.backend(),
        }
    }
}

impl Machine {
    /// The machine now, with the load average from before the bench, so a
    /// reader sees whether something else was competing.
    fn now(load_before: Option<[f64; 3]>) -> Self {
        Self {
            cpus: std::thread::available_parallelism().map_or(0, usize::from),
            cpu_model: cpu_model(),
            load_before,
            load_after: load_average(),
        }
    }
}

fn progress(line: &str) {
    eprintln!("tern bench: {line}");
}

fn ratio(b: f64, a: f64) -> f64 {
    if a > 0.0 {
        b / a
    } else {
        0.0
    }
}

/// The same load for both runs; only the target and account differ (and,
/// with several nodes, the further targets the caller adds).
fn load_config(
    args: &BenchArgs,
    addr: SocketAddr,
    account: &str,
    deadline: Instant,
) -> anyhow::Result<LoadConfig> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left < Duration::from_secs(1) {
        bail!(
            "the overall deadline ({:?}) passed before the run could start",
            args.deadline
        );
    }
    Ok(LoadConfig {
        system_id: account.to_owned(),
        password: account.to_owned(),
        sessions: args.sessions,
        window: args.window,
        messages: args.messages,
        deadline: left,
        rate: args.rate,
        text_len: args.text_len,
        registered_delivery: args.receipts_on(),
        receipt_wait: left.min(Duration::from_secs(30)),
        ..LoadConfig::new(addr)
    })
}

/// A daemon configuration for the run: everything on loopback, the store
/// in the work directory (or, for a node of a Redis-backed run, under the
/// run's prefix in Redis), no admin listener (it would take a fixed port).
fn daemon_config(
    args: &BenchArgs,
    dir: &Path,
    sim: SocketAddr,
    redis: Option<RedisNode<'_>>,
) -> String {
    let quote = |s: &str| toml::Value::String(s.to_owned()).to_string();
    let (node_id, storage) = match redis {
        None => (
            String::new(),
            format!(
                "path = {}\ndurability = \"{}\"\n",
                quote(&dir.join("data").to_string_lossy()),
                args.store.name()
            ),
        ),
        Some(node) => (
            format!("id = {}\n", node.id),
            format!(
                "backend = \"redis\"\n\n[storage.redis]\naddresses = [{}]\nprefix = {}\n\
                 lease_ttl = \"{LEASE_TTL_S}s\"\n",
                quote(node.url),
                quote(node.prefix)
            ),
        ),
    };
    format!(
        r#"# Written by `tern bench`.
[node]
system_id = "tern-bench"
{node_id}
[[listener]]
address = "127.0.0.1:0"

[storage]
{storage}
[log]
level = "warn"

[[client]]
system_id = "{CLIENT}"
passwords = ["{CLIENT}"]

[[upstream]]
name = "simulator"
host = "127.0.0.1"
port = {sim_port}
system_id = "{UPSTREAM_ACCOUNT}"
password = "bench"
sessions = {sessions}
window = {window}

[[route]]
name = "everything"
upstreams = ["simulator"]
"#,
        sim_port = sim.port(),
        sessions = args.upstream_sessions.max(1),
        window = args.window.max(1),
    )
}

/// Writes each node's configuration and starts it. One node without
/// `--redis` is today's single daemon (`tern.toml`, `tern.log`, a sled store
/// in `data`); Redis nodes get `tern-<id>.toml` and `tern-<id>.log` and one
/// key prefix, new for this bench so no earlier run's messages or leases
/// are found.
///
/// With `--http` the first node also serves the HTTP API, on the port
/// returned beside the nodes.
async fn start_nodes(
    args: &BenchArgs,
    dir: &Path,
    sim: SocketAddr,
) -> anyhow::Result<(Vec<Daemon>, Option<u16>)> {
    let prefix = format!(
        "bench-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
    );
    let mut daemons = Vec::with_capacity(args.nodes);
    for id in (1..=u16::MAX).take(args.nodes) {
        let redis = args.redis.as_deref().map(|url| RedisNode {
            url,
            prefix: &prefix,
            id,
        });
        let (stem, label) = match redis {
            None => ("tern".to_owned(), "tern".to_owned()),
            Some(_) if args.nodes == 1 => (format!("tern-{id}"), "tern".to_owned()),
            Some(_) => (format!("tern-{id}"), format!("tern node {id}")),
        };
        let config = dir.join(format!("{stem}.toml"));
        let mut text = daemon_config(args, dir, sim, redis);
        if args.http && id == 1 {
            text.push_str(&super::bench_http::config(0));
        }
        // Checked here so a bad --redis address reads as a sentence, not
        // as a daemon's failed start.
        crate::config::Config::from_text(&config, &text)
            .map_err(|err| anyhow!("the daemon configuration is invalid:\n{err}"))?;
        std::fs::write(&config, text).with_context(|| format!("writing {}", config.display()))?;
        let daemon = Daemon::spawn(&config, &dir.join(format!("{stem}.log")), label).await?;
        progress(&format!(
            "(b) starting {} (pid {}) on 127.0.0.1:{}{}…",
            daemon.label,
            daemon.pid,
            daemon.port,
            redis.map_or(String::new(), |r| format!(
                ", store {} prefix {}",
                r.url, r.prefix
            ))
        ));
        daemons.push(daemon);
    }
    let http_port = daemons.first().and_then(|d| d.http_port);
    Ok((daemons, http_port))
}

/// Waits until every node accepts connections on its port and the
/// simulator has `sessions` sessions of the upstream account bound, in
/// total: with Redis the session slots are leases the nodes share, and
/// which node holds them is theirs to settle.
/// [`wait_ready`], and with several nodes, until the upstream sessions are
/// spread over them: the first node took them all before the others
/// joined, and hands those over its share at a renewal (every third of the
/// lease), so after a lease time each node has its share.
async fn wait_spread(
    daemons: &mut [Daemon],
    sim: &SimHandle,
    sessions: usize,
    deadline: Instant,
) -> anyhow::Result<()> {
    wait_ready(daemons, sim, sessions, deadline).await?;
    if daemons.len() > 1 {
        progress("letting the nodes share the upstream sessions…");
        tokio::time::sleep(Duration::from_secs(LEASE_TTL_S)).await;
        wait_ready(daemons, sim, sessions, deadline).await?;
    }
    Ok(())
}

async fn wait_ready(
    daemons: &mut [Daemon],
    sim: &SimHandle,
    sessions: usize,
    deadline: Instant,
) -> anyhow::Result<()> {
    let wanted = sessions.max(1);
    loop {
        for daemon in daemons.iter_mut() {
            if let Some(status) = daemon.child.try_wait()? {
                bail!(
                    "{} exited during start-up ({status}); its log ends:\n{}",
                    daemon.label,
                    daemon.log_tail()
                );
            }
        }
        let mut listening = 0;
        for daemon in daemons.iter() {
            if tokio::net::TcpStream::connect(("127.0.0.1", daemon.port))
                .await
                .is_ok()
            {
                listening += 1;
            }
        }
        let bound = sim.sessions(UPSTREAM_ACCOUNT).len();
        if listening == daemons.len() && bound >= wanted {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let listening = match daemons.len() {
                1 => (listening == 1).to_string(),
                n => format!("{listening} of {n} nodes"),
            };
            bail!(
                "tern was not ready before the deadline (listening: {listening}, \
                 upstream sessions bound: {bound} of {wanted}); {}",
                logs_tail(daemons)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// "its log ends: …" for one daemon, each node's log tail for several.
fn logs_tail(daemons: &[Daemon]) -> String {
    match daemons {
        [one] => format!("its log ends:\n{}", one.log_tail()),
        all => {
            let mut text = "their logs end:".to_owned();
            for daemon in all {
                text.push_str(&format!("\n== {} ==\n{}", daemon.label, daemon.log_tail()));
            }
            text
        }
    }
}

/// Stops every node at once (each has [`STOP_GRACE`], so stopping them in
/// turn could take N times that); true when all stopped cleanly. Says
/// which did not, and which logged anything: the daemons log at `warn`, so
/// any line is a warning or an error worth a look (`--keep` keeps them).
async fn stop_nodes(daemons: &mut [Daemon]) -> Vec<Stopped> {
    let stopped = join_all(daemons.iter_mut().map(Daemon::terminate)).await;
    for (daemon, stop) in daemons.iter().zip(&stopped) {
        if !stop.clean {
            progress(&format!("{} did not stop cleanly on SIGTERM", daemon.label));
        }
        let text = std::fs::read_to_string(&daemon.log).unwrap_or_default();
        if let Some(last) = text.lines().last() {
            progress(&format!(
                "{} logged {} line(s) at warn or above; the last: {last}",
                daemon.label,
                text.lines().count()
            ));
        }
    }
    stopped
}

/// How one node ended after SIGTERM.
#[derive(Debug, Clone, Copy)]
struct Stopped {
    /// It exited by itself, successfully.
    clean: bool,
    /// Its CPU ticks (user + system, every thread) at its exit.
    exit_ticks: Option<u64>,
}

/// The daemon's temporary directory, removed on drop unless kept.
struct WorkDir {
    path: PathBuf,
    keep: bool,
}

impl WorkDir {
    fn create(keep: bool) -> anyhow::Result<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path =
            std::env::temp_dir().join(format!("tern-bench-{}-{nanos:08x}", std::process::id()));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self { path, keep })
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// How long a daemon may take to bind its listener.
const LISTEN_WITHIN: Duration = Duration::from_secs(30);

/// The daemon child process; killed on drop if still running, so an error
/// anywhere in the bench never leaves it behind.
struct Daemon {
    child: Child,
    pid: u32,
    log: PathBuf,
    /// Its listener's port: one the daemon took (its config says port 0)
    /// and wrote to its `--listening-file`.
    port: u16,
    /// Its HTTP API listener's port, when its config has one (`--http`).
    http_port: Option<u16>,
    /// How messages name it: "tern", or "tern node 2" among several.
    label: String,
}

impl Daemon {
    async fn spawn(config: &Path, log: &Path, label: String) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("locating the tern binary")?;
        let log_file =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let listening = config.with_extension("listening");
        let _ = std::fs::remove_file(&listening);
        let child = Command::new(exe)
            .arg("run")
            .arg("--config")
            .arg(config)
            .arg("--listening-file")
            .arg(&listening)
            // As configured ([log] level = "warn"), whatever the caller's
            // RUST_LOG: verbose logging would be measured as Tern's cost.
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .context("starting `tern run`")?;
        let mut daemon = Self {
            pid: child.id(),
            child,
            log: log.to_owned(),
            port: 0,
            http_port: None,
            label,
        };
        (daemon.port, daemon.http_port) = daemon.ports(&listening).await?;
        Ok(daemon)
    }

    /// The client port, and the HTTP API's if any, from `file` (`tern run
    /// --listening-file`), once the daemon wrote it: at most
    /// [`LISTEN_WITHIN`], or until it exits.
    async fn ports(&mut self, file: &Path) -> anyhow::Result<(u16, Option<u16>)> {
        let until = Instant::now() + LISTEN_WITHIN;
        loop {
            if let Ok(text) = std::fs::read_to_string(file) {
                let port = |kind: &str| {
                    text.lines()
                        .find_map(|l| l.strip_prefix(kind))
                        .and_then(|a| a.parse::<SocketAddr>().ok())
                        .map(|a| a.port())
                };
                let client = port("client ")
                    .ok_or_else(|| anyhow!("no client listener in {}", file.display()))?;
                return Ok((client, port("http ")));
            }
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited before it listened ({status}); its log ends:\n{}",
                    self.label,
                    self.log_tail()
                );
            }
            if Instant::now() >= until {
                bail!(
                    "{} did not bind its listener within {LISTEN_WITHIN:?}",
                    self.label
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGTERM, then up to [`STOP_GRACE`] for a clean exit, then SIGKILL.
    /// The CPU ticks are read from the exited process before it is reaped
    /// (a zombie's `/proc/<pid>/stat` still sums all its threads), so
    /// what the daemon spent stopping (the store's last checkpoint) is
    /// counted too.
    async fn terminate(&mut self) -> Stopped {
        // std has no SIGTERM and the crate forbids unsafe code: kill(1).
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if sent {
            let until = Instant::now() + STOP_GRACE;
            while Instant::now() < until {
                // Only this process can reap its child, so a zombie seen
                // here stays one until `try_wait` below.
                let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).ok();
                if stat.as_deref().is_some_and(|stat| !has_exited(stat)) {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
                let exit_ticks = stat.as_deref().and_then(stat_cpu_ticks);
                match self.child.try_wait() {
                    Ok(Some(status)) => {
                        return Stopped {
                            clean: status.success(),
                            exit_ticks,
                        }
                    }
                    Ok(None) => tokio::time::sleep(Duration::from_millis(20)).await,
                    Err(_) => break,
                }
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        Stopped {
            clean: false,
            exit_ticks: None,
        }
    }

    /// The last lines of the daemon's standard error, for error messages.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Resident memory of a process, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy)]
struct Memory {
    rss_kb: u64,
    /// VmHWM: the peak resident set over the process's life.
    hwm_kb: u64,
}

fn memory(pid: u32) -> Option<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb = |key: &str| -> Option<u64> {
        status
            .lines()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
    };
    Some(Memory {
        rss_kb: kb("VmRSS:")?,
        hwm_kb: kb("VmHWM:")?,
    })
}

/// The largest VmRSS of each process seen until `stop` (or the deadline):
/// a second view of the peak, which VmHWM gives over the whole life
/// including start-up.
async fn sample_rss(pids: Vec<u32>, stop: CancellationToken, deadline: Instant) -> Vec<u64> {
    let mut max = vec![0; pids.len()];
    loop {
        for (pid, max) in pids.iter().zip(max.iter_mut()) {
            if let Some(m) = memory(*pid) {
                *max = (*max).max(m.rss_kb);
            }
        }
        tokio::select! {
            () = tokio::time::sleep(SAMPLE_EVERY) => {}
            () = stop.cancelled() => return max,
            () = tokio::time::sleep_until(deadline) => return max,
        }
    }
}

/// utime + stime of a process (`self` or a pid), in clock ticks, from
/// `/proc/<pid>/stat`. The command name (field 2) may hold spaces and
/// parentheses, so fields are counted after its last `)`.
fn cpu_ticks(pid: &str) -> Option<u64> {
    stat_cpu_ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// User plus system ticks of a `/proc/<pid>/stat` line.
fn stat_cpu_ticks(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the name: state is field 3, so utime (14) and stime (15) are
    // at offsets 11 and 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Whether a `/proc/<pid>/stat` line is that of an exited process
/// awaiting its reaping (state `Z`).
fn has_exited(stat: &str) -> bool {
    stat.rfind(')')
        .and_then(|end| stat[end + 1..].split_whitespace().next())
        .is_some_and(|state| state == "Z")
}

/// USER_HZ from `getconf CLK_TCK`; 100, the Linux value, if unavailable.
fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|hz| *hz > 0.0)
        .unwrap_or(100.0)
}

/// The machine's CPU time so far, from the first line of `/proc/stat`:
/// all of it and the part the hypervisor gave to other guests (steal).
#[derive(Debug, Clone, Copy)]
struct MachineTicks {
    total: u64,
    steal: u64,
}

impl MachineTicks {
    fn read() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        Self::parse(stat.lines().next()?)
    }

    /// `cpu  user nice system idle iowait irq softirq steal guest guest_nice`;
    /// guest time is already counted in user, so the total stops at steal.
    fn parse(line: &str) -> Option<Self> {
        let mut fields = line.split_whitespace();
        if fields.next()? != "cpu" {
            return None;
        }
        let ticks: Vec<u64> = fields
            .take(8)
            .map(|f| f.parse().ok())
            .collect::<Option<_>>()?;
        Some(Self {
            total: ticks.iter().sum(),
            steal: *ticks.get(7)?,
        })
    }

    fn steal_percent(before: Option<Self>, after: Option<Self>) -> Option<f64> {
        let (before, after) = (before?, after?);
        let total = after.total.checked_sub(before.total)?;
        let steal = after.steal.checked_sub(before.steal)?;
        (total > 0).then(|| 100.0 * steal as f64 / total as f64)
    }
}

fn load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut it = text.split_whitespace().map(|f| f.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

fn cpu_model() -> Option<String> {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()?
        .lines()
        .find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key.trim() == "model name").then(|| value.trim().to_owned())
        })
}

/// What was asked.
#[derive(Debug, Serialize)]
struct Settings {
    sessions: usize,
    window: usize,
    messages: u64,
    receipts: bool,
    rate: Option<u32>,
    receipt_delay_ms: f64,
    text_len: usize,
    upstream_sessions: usize,
    store: Durability,
    /// Tern nodes in run (b).
    nodes: usize,
    backend: Backend,
}

/// Where it ran.
#[derive(Debug, Serialize)]
struct Machine {
    cpus: usize,
    cpu_model: Option<String>,
    load_before: Option<[f64; 3]>,
    load_after: Option<[f64; 3]>,
}

/// What the daemon (all its nodes) used during run (b).
#[derive(Debug, Serialize)]
struct TernUsage {
    #[serde(flatten)]
    memory: TernMemory,
    /// CPU seconds (user + system) during run (b), summed over the nodes.
    cpu_s: Option<f64>,
    /// CPU seconds from the start of run (b) to the nodes' exit after
    /// SIGTERM, summed over the nodes: `cpu_s` plus what stopping cost,
    /// chiefly the store's last checkpoint, which a longer run pays as it
    /// goes. `None` with `--http` (run (c) comes between) or when a node
    /// had to be killed.
    cpu_s_through_stop: Option<f64>,
    /// Wall seconds of run (b).
    wall_s: f64,
    /// `cpu_s / wall_s`, in percent of one core.
    cpu_percent: Option<f64>,
    /// Every node exited by itself, successfully, after SIGTERM.
    stopped_cleanly: bool,
}

/// The daemon's memory during run (b) (in the report, beside its CPU).
#[derive(Debug, Serialize)]
struct TernMemory {
    /// VmHWM at the end of run (b), MB; of the largest node, since each
    /// node would be a machine of its own in a real cluster.
    peak_rss_mb: Option<f64>,
    /// VmHWM of each node at the end of run (b), MB, in node order.
    peak_rss_mb_per_node: Vec<Option<f64>>,
    /// The largest VmRSS sampled during run (b), MB (of any node).
    max_sampled_rss_mb: Option<f64>,
}

impl TernMemory {
    /// From each node's reading at the end of run (b) and the largest RSS
    /// sampled during it.
    fn of(memories: &[Option<Memory>], max_rss_kb: &[u64]) -> TernMemory {
        let mb = |kb: u64| kb as f64 / 1024.0;
        let per_node: Vec<Option<f64>> = memories.iter().map(|m| m.map(|m| mb(m.hwm_kb))).collect();
        let max_sampled_kb = max_rss_kb.iter().copied().max().unwrap_or(0);
        TernMemory {
            peak_rss_mb: per_node.iter().flatten().copied().reduce(f64::max),
            peak_rss_mb_per_node: per_node,
            max_sampled_rss_mb: (max_sampled_kb > 0).then(|| mb(max_sampled_kb)),
        }
    }
}

/// The whole bench.
#[derive(Debug, Serialize)]
struct BenchReport {
    settings: Settings,
    machine: Machine,
    /// (a): straight to the simulator.
    direct: LoadReport,
    /// (b): through Tern.
    through_tern: LoadReport,
    /// submits/s of (b) over those of (a).
    ratio: f64,
    /// receipts/s of (b) over those of (a), with receipts.
    receipt_ratio: Option<f64>,
    /// p99 submit→resp of (b) minus that of (a), ms.
    added_p99_submit_ms: f64,
    /// p99 submit→receipt of (b) minus that of (a), ms.
    added_p99_receipt_ms: Option<f64>,
    tern: TernUsage,
    /// CPU seconds of this process (load generator and simulator) during (b).
    bench_process_cpu_s: Option<f64>,
    /// CPU seconds of this process during (a): all the direct path costs.
    direct_cpu_s: Option<f64>,
    /// Share of the machine's CPU time the hypervisor took (steal) during
    /// (a) and (b), percent: on a shared guest, what makes runs an hour
    /// apart disagree.
    steal_percent: [Option<f64>; 2],
    /// Each node's CPU and the Redis server's, per message of run (b).
    scale_out: ScaleOut,
    /// Submits the simulator received over both runs.
    simulator_submits: u64,
    /// Receipts the simulator had acknowledged over both runs.
    simulator_receipts_acked: u64,
    /// Both runs completed (and run (c), with `--http`).
    completed: bool,
    /// Run (c), with `--http`: the HTTP API.
    #[serde(skip_serializing_if = "Option::is_none")]
    http: Option<super::bench_http::HttpRun>,
}

impl BenchReport {
    /// Success only when every run completed: a bench cut short by its
    /// deadline is a failed measurement, whatever it printed.
    fn exit_code(&self) -> ExitCode {
        if self.completed {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        }
    }

    /// Prints the report: JSON for scripts, else the table for people.
    fn print(&self, json: bool) -> anyhow::Result<()> {
        if json {
            println!(
                "{}",
                serde_json::to_string(self).context("serialising the report")?
            );
        } else {
            print!("{}", self.to_table());
        }
        Ok(())
    }

    /// The report for people: what was run and where, the two runs side by
    /// side, their latencies, and what Tern and the bench itself used.
    fn to_table(&self) -> String {
        let mut t = String::new();
        self.write_settings(&mut t);
        let _ = writeln!(t);
        self.write_throughput(&mut t);
        let _ = writeln!(t);
        self.write_latency(&mut t);
        let _ = writeln!(t);
        self.write_usage(&mut t);
        self.scale_out.write(&self.settings, &mut t);
        if let Some(http) = &self.http {
            let _ = writeln!(t);
            let smpp_cpu_us = self
                .tern
                .cpu_s
                .map(|cpu| 1e6 * cpu / (self.settings.messages.max(1) as f64));
            super::bench_http::write(&mut t, http, self.through_tern.submits_per_s, smpp_cpu_us);
        }
        if !self.completed {
            let _ = writeln!(
                t,
                "NOT COMPLETED: a run stopped early (see `stopped by`); figures are partial"
            );
        }
        t
    }

    /// What the bench ran, and on what machine (with its load before and
    /// after, so a busy machine shows).
    fn write_settings(&self, t: &mut String) {
        let s = &self.settings;
        let _ = writeln!(
            t,
            "tern bench: {} session(s) × window {}, {} message(s) of {} chars, receipts {}{}, \
             store {}, {} upstream session(s), simulator receipt delay {} ms, \
             {} node(s), backend {}",
            s.sessions,
            s.window,
            s.messages,
            s.text_len,
            if s.receipts { "on" } else { "off" },
            s.rate.map_or(String::new(), |r| format!(", rate {r}/s")),
            s.store.name(),
            s.upstream_sessions,
            s.receipt_delay_ms,
            s.nodes,
            s.backend.name()
        );
        let m = &self.machine;
        let load = |l: Option<[f64; 3]>| {
            l.map_or("-".to_owned(), |l| {
                format!("{:.2} {:.2} {:.2}", l[0], l[1], l[2])
            })
        };
        let _ = writeln!(
            t,
            "machine: {} CPU(s), {}, load average {} before, {} after",
            m.cpus,
            m.cpu_model.as_deref().unwrap_or("unknown CPU"),
            load(m.load_before),
            load(m.load_after)
        );
    }

    /// Each run's counts and rates, and the ratio of (b) to (a).
    fn write_throughput(&self, t: &mut String) {
        let s = &self.settings;
        let (a, b) = (&self.direct, &self.through_tern);
        let _ = writeln!(t, "{:<28}{:>14}{:>16}", "", "(a) direct", "(b) via Tern");
        let _ = writeln!(
            t,
            "{:<28}{:>14}{:>16}",
            "stopped by",
            format!("{:?}", a.stopped_by),
            format!("{:?}", b.stopped_by)
        );
        let _ = writeln!(
            t,
            "{:<28}{:>14}{:>16}",
            "accepted / submitted",
            format!("{}/{}", a.accepted, a.submitted),
            format!("{}/{}", b.accepted, b.submitted)
        );
        if s.receipts {
            let _ = writeln!(
                t,
                "{:<28}{:>14}{:>16}",
                "receipts matched", a.receipts_matched, b.receipts_matched
            );
        }
        let _ = writeln!(
            t,
            "{:<28}{:>14.0}{:>16.0}",
            "submits/s", a.submits_per_s, b.submits_per_s
        );
        if s.receipts {
            let _ = writeln!(
                t,
                "{:<28}{:>14.0}{:>16.0}",
                "receipts/s (end to end)", a.receipts_per_s, b.receipts_per_s
            );
        }
        let _ = writeln!(t, "ratio b/a, submits/s        {:.3}", self.ratio);
        if let Some(r) = self.receipt_ratio {
            let _ = writeln!(t, "ratio b/a, receipts/s       {r:.3}");
        }
    }

    /// The latency percentiles of both runs, and what Tern adds at p99.
    fn write_latency(&self, t: &mut String) {
        let s = &self.settings;
        let (a, b) = (&self.direct, &self.through_tern);
        let _ = writeln!(
            t,
            "latency (ms)                    {:>11}{:>11}{:>11}{:>11}",
            "p50", "p90", "p99", "max"
        );
        let mut row = |name: &str, l: &LatencySummary| {
            let _ = writeln!(
                t,
                "  {name:<30}{:>11.3}{:>11.3}{:>11.3}{:>11.3}",
                ms(l.p50_us),
                ms(l.p90_us),
                ms(l.p99_us),
                ms(l.max_us)
            );
        };
        row("submit→resp (a) direct", &a.submit_latency);
        row("submit→resp (b) via Tern", &b.submit_latency);
        if s.receipts {
            row("submit→receipt (a) direct", &a.receipt_latency);
            row("submit→receipt (b) via Tern", &b.receipt_latency);
        }
        let _ = writeln!(
            t,
            "added by Tern at p99: submit→resp {:+.3} ms{}",
            self.added_p99_submit_ms,
            self.added_p99_receipt_ms
                .map_or(String::new(), |r| format!(", submit→receipt {r:+.3} ms"))
        );
    }

    /// What the Tern node(s) and the bench process used, CPU per message,
    /// and what the hypervisor took, so the ratio can be judged.
    fn write_usage(&self, t: &mut String) {
        let s = &self.settings;
        let u = &self.tern;
        let not_clean = if u.stopped_cleanly {
            ""
        } else {
            "; did not stop cleanly on SIGTERM"
        };
        if s.nodes == 1 {
            let _ = writeln!(
                t,
                "Tern process during (b): peak RSS (VmHWM) {} MB, max sampled RSS {} MB, \
                 CPU {} s over {:.3} s = {}% of one core{not_clean}",
                opt(u.memory.peak_rss_mb, 1),
                opt(u.memory.max_sampled_rss_mb, 1),
                opt(u.cpu_s, 2),
                u.wall_s,
                opt(u.cpu_percent, 0),
            );
        } else {
            let per_node: Vec<String> = u
                .memory
                .peak_rss_mb_per_node
                .iter()
                .map(|mb| opt(*mb, 1))
                .collect();
            let _ = writeln!(
                t,
                "Tern, {} processes during (b): peak RSS (VmHWM) of the largest {} MB \
                 (per node {}), max sampled RSS {} MB, CPU summed {} s over {:.3} s = {}% \
                 of one core{not_clean}",
                s.nodes,
                opt(u.memory.peak_rss_mb, 1),
                per_node.join(" / "),
                opt(u.memory.max_sampled_rss_mb, 1),
                opt(u.cpu_s, 2),
                u.wall_s,
                opt(u.cpu_percent, 0),
            );
        }
        let _ = writeln!(
            t,
            "bench process (load generator + simulator): CPU {} s during (a), {} s during (b)",
            opt(self.direct_cpu_s, 2),
            opt(self.bench_process_cpu_s, 2)
        );
        // Both paths share the machine's cores, so when both are CPU-bound
        // the ratio of throughputs is about the inverse ratio of CPU spent
        // per message: this line says what the ratio can be.
        let per_message =
            |cpu: Option<f64>| cpu.map(|cpu| 1e6 * cpu / (self.settings.messages.max(1) as f64));
        let through_cpu = match (u.cpu_s, self.bench_process_cpu_s) {
            (Some(tern), Some(bench)) => Some(tern + bench),
            _ => None,
        };
        let _ = writeln!(
            t,
            "CPU per message, all processes: (a) {} µs, (b) {} µs (Tern {} µs; {} µs \
             counting its stop)",
            opt(per_message(self.direct_cpu_s), 1),
            opt(per_message(through_cpu), 1),
            opt(per_message(u.cpu_s), 1),
            opt(per_message(u.cpu_s_through_stop), 1),
        );
        let _ = writeln!(
            t,
            "CPU taken by the hypervisor (steal): {}% during (a), {}% during (b)",
            opt(self.steal_percent[0], 1),
            opt(self.steal_percent[1], 1),
        );
    }
}

/// CPU readings taken just before and just after run (b): each node's
/// (from `/proc`, in clock ticks) and, with `--redis`, the Redis server's
/// (from its `INFO cpu`, in seconds), wherever it runs.
struct CpuReading {
    nodes: Vec<Option<u64>>,
    redis: Option<f64>,
}

impl CpuReading {
    async fn take(pids: &[u32], redis: Option<&str>) -> CpuReading {
        let redis = match redis {
            None => None,
            Some(url) => match tern_storage::redis_store::server_cpu_seconds(url).await {
                Ok(seconds) => Some(seconds),
                Err(err) => {
                    progress(&format!("Redis's CPU not measured: {err}"));
                    None
                }
            },
        };
        CpuReading {
            redis,
            ..CpuReading::nodes(pids)
        }
    }

    /// The nodes' CPU ticks now, without Redis's.
    fn nodes(pids: &[u32]) -> CpuReading {
        CpuReading {
            nodes: pids.iter().map(|pid| cpu_ticks(&pid.to_string())).collect(),
            redis: None,
        }
    }

    /// CPU seconds from this reading to the nodes' exits, summed.
    fn until_exit(&self, stopped: &[Stopped], clock: f64) -> Option<f64> {
        let exits: Option<u64> = stopped.iter().map(|s| s.exit_ticks).sum();
        Some(exits?.saturating_sub(self.total()?) as f64 / clock)
    }

    /// The nodes' ticks summed; `None` if any could not be read, since a
    /// partial sum would understate the cost.
    fn total(&self) -> Option<u64> {
        self.nodes.iter().copied().sum()
    }
}

/// What each node and the shared Redis server cost per message during run
/// (b): the figures a projection to N nodes on N machines starts from
/// (BENCHMARKS.md). Per message of the whole run, so the nodes' figures
/// add up to Tern's; each node carries about 1/N of the load.
#[derive(Debug, Serialize)]
struct ScaleOut {
    /// CPU seconds of each node during run (b), in node order.
    node_cpu_s: Vec<Option<f64>>,
    /// Each node's CPU seconds over the run's messages, µs.
    node_cpu_us_per_message: Vec<Option<f64>>,
    /// CPU seconds the Redis server used during run (b) (`used_cpu_sys +
    /// used_cpu_user` of its `INFO cpu`, after minus before); `None`
    /// without `--redis`, or when INFO could not be read.
    redis_cpu_s: Option<f64>,
    /// `redis_cpu_s` over the run's messages, µs.
    redis_cpu_us_per_message: Option<f64>,
}

impl ScaleOut {
    fn between(before: &CpuReading, after: &CpuReading, clock: f64, messages: u64) -> ScaleOut {
        let per_message = |s: Option<f64>| s.map(|s| 1e6 * s / messages.max(1) as f64);
        let node_cpu_s: Vec<Option<f64>> = before
            .nodes
            .iter()
            .zip(&after.nodes)
            .map(|(b, a)| Some(a.as_ref()?.saturating_sub(*b.as_ref()?) as f64 / clock))
            .collect();
        let redis_cpu_s = match (before.redis, after.redis) {
            (Some(b), Some(a)) => Some((a - b).max(0.0)),
            _ => None,
        };
        ScaleOut {
            node_cpu_us_per_message: node_cpu_s.iter().map(|s| per_message(*s)).collect(),
            node_cpu_s,
            redis_cpu_s,
            redis_cpu_us_per_message: per_message(redis_cpu_s),
        }
    }

    /// The per-node and Redis lines of the report (with `--redis`): each
    /// node's CPU per message, then Redis's. The aggregate rates are the
    /// "(b) via Tern" column.
    fn write(&self, settings: &Settings, t: &mut String) {
        if settings.backend != Backend::Redis {
            return;
        }
        let nodes: Vec<String> = self
            .node_cpu_us_per_message
            .iter()
            .map(|us| opt(*us, 1))
            .collect();
        let _ = writeln!(
            t,
            "CPU per message of each node (of the run's messages, µs): {}",
            nodes.join(" / ")
        );
        let _ = writeln!(
            t,
            "Redis server (INFO cpu, sys + user) during (b): CPU {} s, {} µs per message",
            opt(self.redis_cpu_s, 2),
            opt(self.redis_cpu_us_per_message, 1)
        );
    }
}

/// `v` with `digits` decimals, or `-` when it was not measured.
fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.digits$}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_node_and_the_redis_server_get_a_cpu_per_message() {
        let before = CpuReading {
            nodes: vec![Some(100), Some(50), None],
            redis: Some(10.0),
        };
        let after = CpuReading {
            nodes: vec![Some(300), Some(150), Some(80)],
            redis: Some(12.5),
        };
        // 100 ticks a second, 10 000 messages.
        let scale = ScaleOut::between(&before, &after, 100.0, 10_000);
        assert_eq!(scale.node_cpu_s, [Some(2.0), Some(1.0), None]);
        assert_eq!(
            scale.node_cpu_us_per_message,
            [Some(200.0), Some(100.0), None]
        );
        assert_eq!(scale.redis_cpu_s, Some(2.5));
        assert_eq!(scale.redis_cpu_us_per_message, Some(250.0));
        assert_eq!(before.total(), None, "a node not read: no partial sum");
        assert_eq!(after.total(), Some(530));
        let args = parse(&["--nodes", "3", "--redis", "redis://127.0.0.1:6379"]);
        let mut text = String::new();
        scale.write(&Settings::of(&args), &mut text);
        assert!(text.contains("200.0 / 100.0 / -"), "{text}");
        assert!(text.contains("CPU 2.50 s, 250.0 µs per message"), "{text}");
        let sled = parse(&[]);
        let mut text = String::new();
        scale.write(&Settings::of(&sled), &mut text);
        assert!(text.is_empty(), "no Redis lines without --redis: {text}");
    }

    #[test]
    fn proc_stat_is_read_after_the_command_name() {
        // Our own entry exists on Linux; the name may contain spaces.
        assert!(cpu_ticks("self").is_some());
        assert!(memory(std::process::id()).is_some_and(|m| m.hwm_kb >= m.rss_kb / 2));
    }

    #[test]
    fn steal_is_the_eighth_number_of_the_cpu_line() {
        let before = MachineTicks::parse("cpu  100 0 50 800 10 0 0 40 7 0").expect("parsed");
        let after = MachineTicks::parse("cpu  200 0 100 1500 10 0 0 140 9 0").expect("parsed");
        // 950 ticks passed over the eight fields (guest time is already inside
        // user, so the two after steal are not added), 100 of them stolen.
        let percent = MachineTicks::steal_percent(Some(before), Some(after)).expect("percent");
        assert!((percent - 100.0 / 9.5).abs() < 1e-9, "{percent}");
        assert!(MachineTicks::parse("cpu0 1 2 3 4 5 6 7 8").is_none());
        assert!(MachineTicks::parse("cpu  1 2 3").is_none());
        assert!(MachineTicks::read().is_some());
    }

    #[test]
    fn the_daemon_config_is_valid() {
        let args = BenchArgs {
            sessions: 1,
            window: 1,
            messages: 1,
            receipts: false,
            no_receipts: false,
            rate: None,
            receipt_delay: Duration::ZERO,
            text_len: 10,
            upstream_sessions: 2,
            store: Durability::Durable,
            nodes: 1,
            redis: None,
            deadline: Duration::from_secs(1),
            keep: false,
            json: false,
            http: false,
        };
        let dir = std::env::temp_dir().join("tern bench \"quoted\"");
        let sim = "127.0.0.1:2776".parse().expect("addr");
        let text = daemon_config(&args, &dir, sim, None);
        let config = crate::config::Config::from_text(Path::new("bench.toml"), &text);
        assert!(config.is_ok(), "{text}\n{:?}", config.err());
        // `--http` adds a listener and its account.
        let text = text + &super::super::bench_http::config(2777);
        let config = crate::config::Config::from_text(Path::new("bench.toml"), &text);
        assert!(config.is_ok_and(|c| c.http_listeners.len() == 1), "{text}");
        assert!(args.check().is_ok());

        // A node of a Redis-backed run: its id, the shared server and prefix.
        let args = BenchArgs {
            nodes: 3,
            redis: Some("redis://127.0.0.1:6411".to_owned()),
            ..args
        };
        assert!(args.check().is_ok());
        let node = RedisNode {
            url: "redis://127.0.0.1:6411",
            prefix: "bench-1-2",
            id: 2,
        };
        let text = daemon_config(&args, &dir, sim, Some(node));
        let config = crate::config::Config::from_text(Path::new("bench-2.toml"), &text);
        let config = match config {
            Ok(config) => config,
            Err(err) => panic!("{text}\n{err}"),
        };
        assert_eq!(config.node_id, 2);
        match &config.backend {
            crate::config::Backend::Redis(redis) => {
                assert_eq!(redis.addresses, ["redis://127.0.0.1:6411"]);
                assert_eq!(redis.prefix, "bench-1-2");
                assert_eq!(redis.lease_ttl, Duration::from_secs(10));
            }
            crate::config::Backend::Sled => panic!("not a Redis config:\n{text}"),
        }
    }

    /// `tern bench` with these arguments, parsed as clap would.
    fn parse(args: &[&str]) -> BenchArgs {
        #[derive(Debug, clap::Parser)]
        struct Cli {
            #[command(flatten)]
            bench: BenchArgs,
        }
        let argv = std::iter::once("bench").chain(args.iter().copied());
        match <Cli as clap::Parser>::try_parse_from(argv) {
            Ok(cli) => cli.bench,
            Err(err) => panic!("{args:?}: {err}"),
        }
    }

    #[test]
    fn several_nodes_need_redis() {
        let args = parse(&[]);
        assert_eq!((args.nodes, args.backend()), (1, Backend::Sled));
        assert!(args.check().is_ok());

        let err = parse(&["--nodes", "3"]).check().expect_err("refused");
        assert!(err.to_string().contains("--redis"), "{err}");

        let args = parse(&["--nodes", "3", "--redis", "redis://127.0.0.1:6379"]);
        assert_eq!(args.backend(), Backend::Redis);
        assert!(args.check().is_ok());

        // Not an address; the sled-only durability; no node at all.
        for bad in [
            &["--redis", "127.0.0.1:6379"][..],
            &["--redis", "redis://127.0.0.1:6379", "--store", "fast"],
            &["--nodes", "0"],
        ] {
            assert!(parse(bad).check().is_err(), "{bad:?}");
        }
    }
}
