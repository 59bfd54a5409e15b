//! Daily drawdown (CONTRACT §2.8): a group's trading day trips once its realized pnl
//! falls from the day's peak by the drawdown limit, `H - P >= max_drawdown`.

use super::{DailyPolicy, Day, Limit};
use crate::message::Rule;

/// The drawdown limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Drawdown;

impl Limit for Drawdown {
    const RULE: Rule = Rule::DailyDrawdown;
    const VIEW: &'static str = "daily_drawdown";

    fn limit(policy: &DailyPolicy) -> f64 {
        policy.max_drawdown
    }

    fn reached(day: &Day, limit: f64) -> bool {
        day.peak - day.pnl >= limit
    }

    fn test(day: &Day, limit: f64) -> String {
        format!(
            "drawdown {:?} (peak {:?}, pnl {:?}) >= {limit:?}",
            day.peak - day.pnl,
            day.peak,
            day.pnl
        )
    }
}
