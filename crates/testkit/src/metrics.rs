//! Reading Prometheus text exposition the way the tests need it: one
//! sample's value, or the sum of a family's samples.

/// The value of the first sample whose line starts with `series` (a name,
/// or a name and its labels, `tern_binds_total{client="acme"}`); `None` if
/// no line does or its value is not a number.
pub fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// The sum of the samples whose line starts with `series` (a prefix may
/// name several, `...{client="acme"` over every state); `None` if none does.
pub fn total(metrics: &str, series: &str) -> Option<f64> {
    let values: Vec<f64> = metrics
        .lines()
        .filter(|l| l.starts_with(series))
        .filter_map(|l| l.rsplit(' ').next())
        .filter_map(|v| v.parse().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# TYPE a counter\na_total{k=\"x\"} 2\na_total{k=\"y\"} 3.5\nb 7\n";

    #[test]
    fn samples_and_totals() {
        assert_eq!(sample(TEXT, "b"), Some(7.0));
        assert_eq!(sample(TEXT, "a_total{k=\"y\"}"), Some(3.5));
        assert_eq!(total(TEXT, "a_total{"), Some(5.5));
        assert_eq!(sample(TEXT, "c"), None);
        assert_eq!(total(TEXT, "c"), None);
    }
}
