//! Route lookup: with 10 000 destination prefixes (issue target: under
//! 1 µs), and with 50 rules of several prefixes each and the other
//! conditions (priority_flag, UDH, flash, source pattern, data_coding,
//! client, time window) as an operator's table has them.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use tern_router::strategy::Strategy;
use tern_router::table::{MessageKey, RouteUpstream, Rule, SourceMatch, Table, TimeWindow};

/// A small deterministic generator, so every run builds the same table.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + (self.next() % 10) as u8))
            .collect()
    }
}

fn table(prefixes: usize) -> Table {
    let mut rng = Lcg(42);
    let mut rules: Vec<Rule> = (0..prefixes)
        .map(|i| Rule {
            name: format!("r{i}"),
            clients: None,
            prefixes: vec![{
                // Country codes never start with 0 (a leading 00 is the
                // international prefix, dropped when normalising).
                let len = 1 + (rng.next() % 6) as usize;
                format!("{}{}", 1 + rng.next() % 9, rng.digits(len))
            }],
            source: None,
            data_codings: None,
            service_type: None,
            priority_flags: None,
            udh: None,
            flash: None,
            time_window: None,
            upstreams: vec![RouteUpstream {
                name: format!("u{}", i % 7),
                priority: 0,
                weight: 1,
            }],
            strategy: Strategy::Failover,
            resubmit_on: Vec::new(),
        })
        .collect();
    rules.push(Rule {
        name: "default".to_owned(),
        prefixes: vec![],
        ..rules[0].clone()
    });
    Table::compile(rules).expect("valid table")
}

fn lookup(c: &mut Criterion) {
    let table = table(10_000);
    let mut rng = Lcg(7);
    let destinations: Vec<String> = (0..1024).map(|_| rng.digits(11)).collect();
    let mut i = 0;
    c.bench_function("table/lookup/10k_prefixes", |b| {
        b.iter(|| {
            i = (i + 1) % destinations.len();
            let key = MessageKey {
                client: "acme",
                destination: black_box(&destinations[i]),
                source: "Tern",
                data_coding: 0,
                service_type: "",
                priority_flag: 0,
                esm_class: 0,
                now: jiff::Timestamp::UNIX_EPOCH,
            };
            black_box(table.lookup(&key).map(|r| r.name.len()))
        })
    });
}

/// 50 rules: 10 countries, each with 5 rules of 2 to 3 prefixes and one
/// or two conditions each, and a default last.
fn conditioned_table() -> Table {
    let countries = ["34", "33", "44", "49", "39", "351", "32", "31", "41", "43"];
    let mut rules = Vec::new();
    for (c, cc) in countries.iter().enumerate() {
        for k in 0..5u8 {
            let mut rule = Rule {
                name: format!("{cc}-{k}"),
                clients: None,
                prefixes: vec![format!("{cc}6"), format!("{cc}7"), format!("{cc}{}", k)],
                source: None,
                data_codings: None,
                service_type: None,
                priority_flags: None,
                udh: None,
                flash: None,
                time_window: None,
                upstreams: vec![RouteUpstream {
                    name: format!("u{}", (c + usize::from(k)) % 7),
                    priority: 0,
                    weight: 1,
                }],
                strategy: Strategy::Failover,
                resubmit_on: Vec::new(),
            };
            match k {
                0 => rule.priority_flags = Some(0b1110),
                1 => {
                    rule.udh = Some(true);
                    rule.flash = Some(false);
                }
                2 => {
                    rule.source = Some(SourceMatch::pattern("+34??0*").expect("valid"));
                    rule.data_codings = Some(vec![8]);
                }
                3 => {
                    rule.time_window = Some(
                        TimeWindow::new(0b11111, 8 * 60, 20 * 60, "Europe/Madrid").expect("valid"),
                    );
                }
                _ => rule.clients = Some(["acme".to_owned(), "beta".to_owned()].into()),
            }
            rules.push(rule);
        }
    }
    let mut default = rules[0].clone();
    default.name = "default".to_owned();
    default.prefixes.clear();
    default.priority_flags = None;
    rules.push(default);
    Table::compile(rules).expect("valid table")
}

fn lookup_conditions(c: &mut Criterion) {
    let table = conditioned_table();
    let mut rng = Lcg(11);
    let countries = [
        "34", "33", "44", "49", "39", "351", "32", "31", "41", "43", "1",
    ];
    let destinations: Vec<String> = (0..1024)
        .map(|k| format!("{}{}", countries[k % countries.len()], rng.digits(9)))
        .collect();
    // Saturday noon in Madrid: the weekday window rules are tried and fail.
    let now: jiff::Timestamp = "2026-03-28T11:00:00Z".parse().expect("instant");
    let mut i = 0;
    c.bench_function("table/lookup/50_rules_with_conditions", |b| {
        b.iter(|| {
            i = (i + 1) % destinations.len();
            let key = MessageKey {
                client: "gamma",
                destination: black_box(&destinations[i]),
                source: "+34600111222",
                data_coding: (i % 2) as u8 * 8,
                service_type: "",
                priority_flag: (i % 2) as u8,
                esm_class: 0,
                now,
            };
            black_box(table.lookup(&key).map(|r| r.name.len()))
        })
    });
}

criterion_group!(benches, lookup, lookup_conditions);
criterion_main!(benches);
