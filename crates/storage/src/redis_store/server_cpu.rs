//! The CPU a Redis server has used, from its `INFO cpu`: what `tern bench
//! --redis` reads before and after a run to give Redis's own CPU per
//! message, the figure that bounds how many nodes one Redis can carry.

use crate::error::StoreError;

/// CPU seconds (system and user, every thread) the Redis server at
/// `address` (`redis://host:port`) has used since it started: the sum of
/// `used_cpu_sys` and `used_cpu_user` in its `INFO cpu`. One connection,
/// opened and dropped here: the bench reads it twice, outside its run.
pub async fn server_cpu_seconds(address: &str) -> Result<f64, StoreError> {
    let client = redis::Client::open(address)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let info: String = redis::cmd("INFO").arg("cpu").query_async(&mut conn).await?;
    parse_cpu_seconds(&info).ok_or_else(|| StoreError::Redis {
        what: format!("INFO cpu of {address} has no used_cpu_sys and used_cpu_user"),
        source: None,
    })
}

/// `used_cpu_sys + used_cpu_user` from the text of `INFO cpu`; `None`
/// when either is missing or not a number.
fn parse_cpu_seconds(info: &str) -> Option<f64> {
    let field = |name: &str| {
        info.lines()
            .find_map(|line| line.trim().strip_prefix(name)?.strip_prefix(':'))
            .and_then(|value| value.trim().parse::<f64>().ok())
    };
    Some(field("used_cpu_sys")? + field("used_cpu_user")?)
}

#[cfg(test)]
mod tests {
    use super::parse_cpu_seconds;

    #[test]
    fn cpu_seconds_are_system_plus_user_of_the_whole_server() {
        let info = "# CPU\r\nused_cpu_sys:1.250000\r\nused_cpu_user:2.500000\r\n\
                    used_cpu_sys_children:9.000000\r\nused_cpu_user_children:9.000000\r\n\
                    used_cpu_sys_main_thread:1.000000\r\nused_cpu_user_main_thread:2.000000\r\n";
        assert_eq!(parse_cpu_seconds(info), Some(3.75));
        assert_eq!(parse_cpu_seconds("# CPU\r\nused_cpu_sys:1.0\r\n"), None);
        assert_eq!(
            parse_cpu_seconds("used_cpu_sys:x\r\nused_cpu_user:1\r\n"),
            None
        );
    }
}
