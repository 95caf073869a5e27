//! Route lookup with 10 000 destination prefixes (issue target: under 1 µs).

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use tern_router::strategy::Strategy;
use tern_router::table::{MessageKey, RouteUpstream, Rule, Table};

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
            };
            black_box(table.lookup(&key).map(|r| r.name.len()))
        })
    });
}

criterion_group!(benches, lookup);
criterion_main!(benches);
