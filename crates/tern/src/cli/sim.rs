//! `tern sim`: the SMSC simulator of `tern-sim` as a stand-alone sandbox
//! upstream, optionally shaped like one vendor.
//!
//! A vendor's shape is read from its built-in router profile (the same data
//! Tern uses to talk to that vendor), so the simulator and Tern agree on
//! what the vendor does: the message id form (`[message_id] form`), the
//! receipt form (`[receipts] text`/`tlvs`), the `err` an UNDELIV receipt
//! carries (the profile's first absent-subscriber, delivery-failure or
//! unknown-subscriber code, written in the profile's `err_radix`), and the
//! per-session rate and window limits. What the simulator cannot express is
//! listed at start-up and in `--help` rather than silently approximated.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, Context};
use tern_codec::CommandStatus;
use tern_router::profile::{IdForm, Radix};
use tern_router::{FinalState, Profile, Reason};
use tern_sim::{
    Behaviour, IdFormat, ReceiptBehaviour, ReceiptForm, Reject, SimConfig, SimSnapshot, Simulator,
};

/// The vendors `--profile` knows (the built-in router profiles).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Vendor {
    /// OVHcloud.
    Ovh,
    /// Mensatek.
    Mensatek,
    /// Telesign.
    Telesign,
    /// Infobip / O2.
    Infobip,
    /// A plain SMPP 3.4 SMSC.
    Generic,
}

impl Vendor {
    fn profile_name(self) -> &'static str {
        match self {
            Vendor::Ovh => "ovh",
            Vendor::Mensatek => "mensatek",
            Vendor::Telesign => "telesign",
            Vendor::Infobip => "infobip",
            Vendor::Generic => "generic",
        }
    }
}

/// `tern sim`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = VENDOR_HELP)]
pub struct SimArgs {
    /// Where to listen (`host:port`; port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:2776")]
    pub listen: SocketAddr,
    /// Behave like this vendor (ids, receipt form and errors, limits); see
    /// the list below (`--help`) for what each means and what is missing.
    #[arg(long, value_enum, default_value_t = Vendor::Generic)]
    pub profile: Vendor,
    /// Share of submits refused (0.0–1.0) with --reject-status.
    #[arg(long, default_value_t = 0.0)]
    pub reject_fraction: f64,
    /// The command_status refused submits get, hex (0x58) or decimal.
    /// Default ESME_RSYSERR (0x08), which Tern treats as temporary.
    #[arg(long, default_value = "0x08", value_parser = parse_status)]
    pub reject_status: u32,
    /// Delay between a submit_sm_resp and its delivery receipt.
    #[arg(long, default_value = "1s", value_parser = super::parse_duration)]
    pub receipt_delay: Duration,
    /// Share of receipts (0.0–1.0) that say UNDELIV instead of DELIVRD.
    #[arg(long, default_value_t = 0.0)]
    pub undeliverable_fraction: f64,
    /// The `err` of UNDELIV receipts, overriding the vendor's; a number
    /// (decimal, written in the receipt as three digits).
    #[arg(long)]
    pub undeliverable_err: Option<u16>,
    /// Submits per second per session, beyond which ESME_RTHROTTLED
    /// (`20/s` or `20`; `0` for none). Default: the vendor's limit, if any.
    #[arg(long, value_parser = parse_rate)]
    pub throttle: Option<u32>,
    /// Unanswered submits per session beyond which ESME_RMSGQFUL (only
    /// bites with --response-delay; `0` for none). Default: the vendor's.
    #[arg(long)]
    pub window: Option<usize>,
    /// Delay of every submit_sm_resp.
    #[arg(long, default_value = "0s", value_parser = super::parse_duration)]
    pub response_delay: Duration,
}

/// Shown by `tern sim --help`: the vendor mapping, kept in step with
/// [`VendorShape::from_profile`] by a unit test.
const VENDOR_HELP: &str = "\
Vendor profiles (read from the built-in router profiles):
  generic   decimal ids; receipt text only (SMPP 3.4 Appendix B); UNDELIV err 027 (MAP absent
            subscriber); no limits.
  ovh       decimal ids (OVH's form is opaque); receipt text + TLVs; UNDELIV err 003 (PTT
            'Unreachable Destination'); 20 submits/s and 10 in flight per session.
            Not simulated: OVH sends only receipted_message_id, the simulator also sends
            message_state and network_error_code; no 0x1401 outgoing_id TLV; no TLS 1.3.
  mensatek  decimal ids; receipt text only; UNDELIV err 051 ('Falló la entrega al teléfono').
            Not simulated: Mensatek writes 'dlvr:', the simulator writes 'dlvrd:'.
  telesign  32-hex-digit random ids; receipt text + TLVs; UNDELIV err 402 (hex 0x402 'Other
            party is not connected').
            Not simulated: the network_error_code TLV carries 402 read as decimal, not
            0x402; no MCC/MNC/price TLVs (0x0410-0x0412); no TLS 1.2 (plain TCP only).
  infobip   decimal ids; receipt text only; UNDELIV err 027 (no vendor table: MAP absent
            subscriber).
            Not simulated: Infobip writes 'dlvrld:' and may say 'DELIVERY UNKNOWN' /
            'REJECTED'; the simulator writes 'dlvrd:' and only DELIVRD / UNDELIV.
All: plain TCP, any system_id and password accepted, 10-digit receipt dates.";

/// Runs `tern sim` until SIGINT or SIGTERM.
pub fn run(args: SimArgs) -> anyhow::Result<ExitCode> {
    super::init_tool_logging();
    super::runtime()?.block_on(simulate(args))
}

async fn simulate(args: SimArgs) -> anyhow::Result<ExitCode> {
    let profile = Profile::builtin(args.profile.profile_name())
        .ok_or_else(|| anyhow!("no built-in profile {}", args.profile.profile_name()))?
        .map_err(|e| anyhow!("built-in profile {}: {e}", args.profile.profile_name()))?;
    let shape = VendorShape::from_profile(&profile);
    let behaviour = behaviour(&args, &shape)?;
    let sim = Simulator::start(SimConfig {
        listen: args.listen,
        id_format: shape.id_format,
        behaviour: behaviour.clone(),
        ..SimConfig::default()
    })
    .await
    .with_context(|| format!("starting the simulator on {}", args.listen))?;
    println!(
        "tern sim: listening on {} as {} ({})",
        sim.addr(),
        profile.name,
        describe(&shape, &behaviour)
    );
    for gap in &shape.gaps {
        println!("  not simulated: {gap}");
    }
    println!("  Ctrl-C or SIGTERM stops it and prints the counters");
    // The address line is what scripts and tests wait for.
    use std::io::Write as _;
    let _ = std::io::stdout().flush();

    super::shutdown_signal().await;
    let stats = sim.stats();
    sim.shutdown().await;
    print_counters(&stats);
    Ok(ExitCode::SUCCESS)
}

/// The behaviour the flags and the vendor ask for, validated by the
/// simulator's own rules (fractions in 0–1, no zero rate).
fn behaviour(args: &SimArgs, shape: &VendorShape) -> anyhow::Result<Behaviour> {
    let throttle = match args.throttle {
        Some(0) => None,
        Some(n) => Some(n),
        None => shape.throttle,
    };
    let window = match args.window {
        Some(0) => None,
        Some(n) => Some(n),
        None => shape.window,
    };
    let behaviour = Behaviour {
        throttle_per_second: throttle,
        window,
        reject: (args.reject_fraction > 0.0).then(|| Reject {
            fraction: args.reject_fraction,
            status: CommandStatus::from_code(args.reject_status),
        }),
        response_delay: args.response_delay,
        receipts: ReceiptBehaviour {
            delay: args.receipt_delay,
            form: shape.form,
            undeliverable_fraction: args.undeliverable_fraction,
            undeliverable_err: args.undeliverable_err.unwrap_or(shape.undeliverable_err),
        },
        ..Behaviour::default()
    };
    behaviour.validate().map_err(|e| anyhow!("{e}"))?;
    Ok(behaviour)
}

fn describe(shape: &VendorShape, behaviour: &Behaviour) -> String {
    let ids = match shape.id_format {
        IdFormat::Decimal => "decimal ids",
        IdFormat::Hex => "hex ids",
        IdFormat::Hex32 => "32-hex-digit ids",
    };
    let form = match shape.form {
        ReceiptForm::Text => "receipt text",
        ReceiptForm::Tlvs => "receipt TLVs",
        ReceiptForm::Both => "receipt text + TLVs",
    };
    let r = &behaviour.receipts;
    let mut parts = vec![
        ids.to_owned(),
        form.to_owned(),
        format!("receipts after {:?}", r.delay),
        format!(
            "{:.0}% UNDELIV with err {:03}",
            r.undeliverable_fraction * 100.0,
            r.undeliverable_err
        ),
    ];
    if let Some(reject) = &behaviour.reject {
        parts.push(format!(
            "{:.0}% refused with {}",
            reject.fraction * 100.0,
            reject.status
        ));
    }
    if let Some(rate) = behaviour.throttle_per_second {
        parts.push(format!("throttle {rate}/s per session"));
    }
    if let Some(window) = behaviour.window {
        parts.push(format!("window {window}"));
    }
    if !behaviour.response_delay.is_zero() {
        parts.push(format!("answers after {:?}", behaviour.response_delay));
    }
    parts.join(", ")
}

fn print_counters(s: &SimSnapshot) {
    println!("tern sim: stopped");
    println!(
        "  connections {}  binds {}  refused binds {}",
        s.connections, s.binds, s.binds_refused
    );
    println!(
        "  submits {}  answered {}  dropped {}",
        s.submits,
        s.responses_total(),
        s.dropped
    );
    for (code, count) in &s.responses {
        println!(
            "    {:<32} {count}",
            CommandStatus::from_code(*code).to_string()
        );
    }
    println!(
        "  receipts queued {}  sent {}  acknowledged {}  discarded {}",
        s.receipts_queued, s.receipts_sent, s.receipts_acked, s.receipts_discarded
    );
    println!(
        "  deliveries refused {}  given up {}",
        s.deliveries_refused, s.deliveries_failed
    );
}

/// What of a vendor the simulator reproduces, and what it cannot.
#[derive(Debug, Clone, PartialEq)]
struct VendorShape {
    id_format: IdFormat,
    form: ReceiptForm,
    undeliverable_err: u16,
    throttle: Option<u32>,
    window: Option<usize>,
    gaps: Vec<String>,
}

/// The err of UNDELIV receipts when the vendor lists no code: MAP
/// "absent subscriber", what most SMSCs send for a phone that is off.
const MAP_ABSENT_SUBSCRIBER: u16 = 27;

impl VendorShape {
    fn from_profile(profile: &Profile) -> Self {
        let mut gaps = Vec::new();
        let id_format = match profile.message_id.form {
            IdForm::Hex32 => IdFormat::Hex32,
            IdForm::Hex => IdFormat::Hex,
            // Opaque: the vendor does not say; decimal, the most common form.
            IdForm::Decimal | IdForm::Opaque => IdFormat::Decimal,
        };
        let receipts = &profile.receipts;
        let form = match (receipts.text, receipts.tlvs) {
            (true, false) => ReceiptForm::Text,
            (false, true) => ReceiptForm::Tlvs,
            _ => ReceiptForm::Both,
        };
        if receipts.tlvs && profile.name == "ovh" {
            gaps.push(
                "OVH's receipts carry receipted_message_id only; the simulator adds \
                 message_state and network_error_code"
                    .to_owned(),
            );
        }
        if !profile.receipt_stat.is_empty() {
            let spellings: Vec<&str> = profile
                .receipt_stat
                .iter()
                .map(|s| s.stat.as_str())
                .collect();
            gaps.push(format!(
                "only DELIVRD and UNDELIV are sent, not {}'s {}",
                profile.name,
                spellings.join(" / ")
            ));
        }
        let hex = receipts.err_radix == Radix::Hex;
        let undeliverable_err = undeliverable_code(profile, hex).unwrap_or(MAP_ABSENT_SUBSCRIBER);
        if hex {
            gaps.push(format!(
                "err is written as the hex code's digits ({undeliverable_err:03}), and the \
                 network_error_code TLV carries {undeliverable_err} read as decimal"
            ));
        }
        if profile.tls.required || profile.tls.minimum.is_some() {
            gaps.push("TLS: the simulator speaks plain TCP only".to_owned());
        }
        Self {
            id_format,
            form,
            undeliverable_err,
            throttle: profile.limits.rate_per_session,
            window: profile.limits.window.map(|w| w as usize),
            gaps,
        }
    }
}

/// The vendor's own `err` for an undeliverable message: the first code of
/// its receipt table that leaves the state UNDELIV (or to the `stat`) with
/// the most telling reason, as the simulator can write it. The simulator
/// writes `err` as three decimal digits, so a hex vendor's code is usable
/// only when its hex digits are all decimal ones (0x402 → "402").
fn undeliverable_code(profile: &Profile, hex: bool) -> Option<u16> {
    let preference = [
        Reason::AbsentSubscriber,
        Reason::DeliveryFailure,
        Reason::UnknownSubscriber,
    ];
    preference.iter().find_map(|reason| {
        profile
            .receipt_error
            .iter()
            .filter(|e| e.reason == *reason)
            .filter(|e| matches!(e.state, None | Some(FinalState::Undeliv)))
            .find_map(|e| {
                let written = if hex {
                    format!("{:x}", e.code)
                } else {
                    e.code.to_string()
                };
                written.parse::<u16>().ok().filter(|n| *n <= 999)
            })
    })
}

/// `0x58`, `88`: a command_status.
fn parse_status(raw: &str) -> Result<u32, String> {
    let raw = raw.trim();
    let parsed = match raw.strip_prefix("0x").or_else(|| raw.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => raw.parse(),
    };
    parsed.map_err(|_| format!("{raw:?} is not a command_status such as 0x58 or 88"))
}

/// `20/s`, `20`: submits per second.
fn parse_rate(raw: &str) -> Result<u32, String> {
    let raw = raw.trim();
    raw.strip_suffix("/s")
        .unwrap_or(raw)
        .trim()
        .parse()
        .map_err(|_| format!("{raw:?} is not a rate such as 20/s"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(name: &str) -> VendorShape {
        let profile = Profile::builtin(name)
            .expect("built in")
            .expect("valid profile");
        VendorShape::from_profile(&profile)
    }

    /// The help text promises these; a profile change must show up here.
    #[test]
    fn each_vendor_maps_as_the_help_says() {
        let generic = shape("generic");
        assert_eq!(
            (
                generic.id_format,
                generic.form,
                generic.undeliverable_err,
                generic.throttle,
                generic.window
            ),
            (IdFormat::Decimal, ReceiptForm::Text, 27, None, None)
        );
        let ovh = shape("ovh");
        assert_eq!(
            (
                ovh.id_format,
                ovh.form,
                ovh.undeliverable_err,
                ovh.throttle,
                ovh.window
            ),
            (IdFormat::Decimal, ReceiptForm::Both, 3, Some(20), Some(10))
        );
        let mensatek = shape("mensatek");
        assert_eq!(
            (mensatek.form, mensatek.undeliverable_err),
            (ReceiptForm::Text, 51)
        );
        let telesign = shape("telesign");
        assert_eq!(
            (
                telesign.id_format,
                telesign.form,
                telesign.undeliverable_err
            ),
            (IdFormat::Hex32, ReceiptForm::Both, 402)
        );
        assert!(telesign.gaps.iter().any(|g| g.contains("TLS")));
        let infobip = shape("infobip");
        assert_eq!(
            (infobip.form, infobip.undeliverable_err),
            (ReceiptForm::Text, 27)
        );
    }

    #[test]
    fn statuses_and_rates_parse() {
        assert_eq!(parse_status("0x58"), Ok(0x58));
        assert_eq!(parse_status("8"), Ok(8));
        assert!(parse_status("x").is_err());
        assert_eq!(parse_rate("20/s"), Ok(20));
        assert_eq!(parse_rate("5"), Ok(5));
        assert!(parse_rate("fast").is_err());
    }
}
