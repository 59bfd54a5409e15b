//! What a strategy may do now, as [`Gate::may_trade`](crate::Gate::may_trade) answers
//! it: a verdict that borrows the gate's state, so answering allocates nothing.

use std::fmt;

use crate::wire::Mode;

/// Why the gate fails closed (CONTRACT §6): every strategy is paused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FailClosed {
    /// The pause-state topic has not been read to its end yet.
    NoState,
    /// No heartbeat of an active guard within `max_silence`.
    GuardSilent,
}

impl FailClosed {
    /// `no_state` or `guard_silent`.
    pub fn as_str(self) -> &'static str {
        match self {
            FailClosed::NoState => "no_state",
            FailClosed::GuardSilent => "guard_silent",
        }
    }
}

impl fmt::Display for FailClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a strategy may do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict<'a> {
    /// Trade as usual.
    Running,
    /// Only orders that reduce the strategy's position.
    ReduceOnly,
    /// No orders at all, and why.
    Paused(Why<'a>),
}

impl Verdict<'_> {
    /// The verdict as a mode: what the strategy's orders are held to.
    pub fn mode(&self) -> Mode {
        match self {
            Verdict::Running => Mode::Running,
            Verdict::ReduceOnly => Mode::ReduceOnly,
            Verdict::Paused(_) => Mode::Paused,
        }
    }

    /// `running`, `reduce_only` or `paused`.
    pub fn as_str(&self) -> &'static str {
        self.mode().as_str()
    }
}

/// Why a strategy is paused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why<'a> {
    /// The gate fails closed.
    FailClosed(FailClosed),
    /// The guard paused the global scope, the strategy's own, or both: the reasons
    /// each paused scope holds (empty for a scope that is not paused).
    Held {
        /// The global scope's reasons, when it is paused.
        global: &'a [String],
        /// The strategy scope's reasons, when it is paused.
        strategy: &'a [String],
    },
}

impl<'a> Why<'a> {
    /// The reasons, as rule names: `no_state` or `guard_silent` when the gate fails
    /// closed, else the paused scopes' reasons, the global scope's first, each name
    /// once.
    pub fn reasons(&self) -> Reasons<'a> {
        match *self {
            Why::FailClosed(why) => Reasons {
                fail: Some(why.as_str()),
                global: &[],
                strategy: &[],
                next_global: 0,
                next_strategy: 0,
            },
            Why::Held { global, strategy } => Reasons {
                fail: None,
                global,
                strategy,
                next_global: 0,
                next_strategy: 0,
            },
        }
    }

    /// Whether the gate fails closed, and why.
    pub fn fail_closed(&self) -> Option<FailClosed> {
        match self {
            Why::FailClosed(why) => Some(*why),
            Why::Held { .. } => None,
        }
    }
}

/// The reasons of a [`Why`], borrowed.
#[derive(Clone, Debug)]
pub struct Reasons<'a> {
    fail: Option<&'static str>,
    global: &'a [String],
    strategy: &'a [String],
    /// How many of `global`, then of `strategy`, were handed out.
    next_global: usize,
    next_strategy: usize,
}

impl<'a> Iterator for Reasons<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        if let Some(fail) = self.fail.take() {
            return Some(fail);
        }
        if let Some(reason) = self.global.get(self.next_global) {
            self.next_global += 1;
            return Some(reason);
        }
        // The strategy's own reasons, less those the global scope already named.
        while let Some(reason) = self.strategy.get(self.next_strategy) {
            self.next_strategy += 1;
            if !self.global.contains(reason) {
                return Some(reason);
            }
        }
        None
    }
}
