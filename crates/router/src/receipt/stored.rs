//! An outcome in the store's form ([`Outcome`]: the `stat` text, the
//! three-digit `err`, the vendor's words) and back.

use tern_storage::Outcome;

use crate::canonical::{Canonical, Class, FinalState, Reason};

/// The store's form of an outcome.
pub fn stored_outcome(canonical: &Canonical, vendor_code: Option<String>) -> Outcome {
    Outcome {
        stat: canonical.state.stat().to_owned(),
        err: canonical.reason.err(),
        vendor_code,
    }
}

/// An outcome read back from the store. The class is not stored (no
/// client receipt carries it), so it reads as permanent; `None` for a stat
/// or err Tern does not write.
pub fn canonical_of(outcome: &Outcome) -> Option<Canonical> {
    Some(Canonical {
        state: outcome.stat.parse::<FinalState>().ok()?,
        reason: Reason::ALL.into_iter().find(|r| r.err() == outcome.err)?,
        class: Class::Permanent,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_reads_back_as_written_but_its_class() {
        for state in FinalState::ALL {
            for reason in Reason::ALL {
                let canonical = Canonical {
                    state,
                    reason,
                    class: Class::Temporary,
                };
                let stored = stored_outcome(&canonical, Some("v".to_owned()));
                assert_eq!(
                    canonical_of(&stored),
                    Some(Canonical {
                        class: Class::Permanent,
                        ..canonical
                    })
                );
            }
        }
    }

    #[test]
    fn a_stat_or_err_tern_does_not_write_reads_as_nothing() {
        let odd = |stat: &str, err| Outcome {
            stat: stat.to_owned(),
            err,
            vendor_code: None,
        };
        assert_eq!(canonical_of(&odd("SENT", 0)), None);
        assert_eq!(canonical_of(&odd("DELIVRD", 555)), None);
    }
}
