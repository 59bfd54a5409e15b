//! Daily loss (CONTRACT §2.8): a group's trading day trips once its realized pnl
//! reaches the loss limit, `P <= -max_loss`.

use super::{DailyPolicy, Day, Limit};
use crate::message::Rule;

/// The loss limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Loss;

impl Limit for Loss {
    const RULE: Rule = Rule::DailyLoss;
    const VIEW: &'static str = "daily_loss";

    fn limit(policy: &DailyPolicy) -> f64 {
        policy.max_loss
    }

    fn reached(day: &Day, limit: f64) -> bool {
        day.pnl <= -limit
    }

    fn test(day: &Day, limit: f64) -> String {
        format!("pnl {:?} <= -{limit:?}", day.pnl)
    }
}
