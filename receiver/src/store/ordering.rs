//! Which webhooks wait for which: the unit of order the worker keeps.

use std::fmt;
use std::str::FromStr;

/// The unit of order. PassFort sends one account's webhooks in one order; a receiver either
/// keeps that whole order ([`Ordering::Global`], the default) or only the order of each
/// profile's webhooks ([`Ordering::PerProfile`]), so that several workers can hand on the
/// webhooks of different profiles in parallel and a failing webhook only holds back its own
/// profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ordering {
    /// One lane: every webhook waits for every webhook that arrived before it.
    #[default]
    Global,
    /// One lane per `data.profile_id` (webhooks without one share a lane of their own): a
    /// webhook waits only for earlier webhooks of the same profile. PostgreSQL store only.
    PerProfile,
}

impl Ordering {
    /// The name used on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Ordering::Global => "global",
            Ordering::PerProfile => "per-profile",
        }
    }
}

impl fmt::Display for Ordering {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An ordering name other than `global` or `per-profile`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown ordering {0:?} (expected global or per-profile)")]
pub struct UnknownOrdering(pub String);

impl FromStr for Ordering {
    type Err = UnknownOrdering;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "global" => Ok(Ordering::Global),
            "per-profile" => Ok(Ordering::PerProfile),
            other => Err(UnknownOrdering(other.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for ordering in [Ordering::Global, Ordering::PerProfile] {
            assert_eq!(ordering.as_str().parse::<Ordering>(), Ok(ordering));
        }
        assert!("per_profile".parse::<Ordering>().is_err());
        assert_eq!(Ordering::default(), Ordering::Global);
    }
}
