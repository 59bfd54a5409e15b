//! Risk events from other sources (CONTRACT §2.3): a risk event whose action —
//! explicit, or `pause` by default for a critical one — is `pause` or `reduce_only`
//! adds the reason `risk_event` with that effect to its scope. No policy section, no
//! state.

use super::{detail, GuardRule};
use crate::engine::decide::{Decide, Trigger};
use crate::message::{RiskEvent, Rule, Severity};

/// The rule for risk events raised by Noctus and other detectors.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RiskEvents;

impl GuardRule for RiskEvents {
    type Policy = ();
    const RULE: Rule = Rule::RiskEvent;

    fn on_risk_event(&mut self, _policy: &(), event: &RiskEvent, decide: &mut Decide<'_>) {
        let Some(effect) = event.effective_action().effect() else {
            return;
        };
        let reason = format!(
            "risk event {} ({}) from {}{}",
            event.kind,
            severity_name(event.severity),
            event.source,
            detail(event.reason.as_deref())
        );
        let trigger = Trigger::message(&event.event_id, event.ts, reason);
        decide.hold(Rule::RiskEvent, effect, &event.scope, &trigger);
    }
}

fn severity_name(severity: Severity) -> &'static str {
    match severity {
        Severity::Info => "info",
        Severity::Warning => "warning",
        Severity::Critical => "critical",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::rules::testing::{risk_event, t, Given};
    use crate::message::{RiskAction, Scope};

    fn noctus(id: &str, severity: Severity, action: Option<RiskAction>) -> RiskEvent {
        RiskEvent {
            action,
            ..risk_event(id, severity, Scope::Global, t(0.0))
        }
    }

    #[test]
    fn a_critical_risk_event_pauses_its_scope_by_default() {
        let mut g = Given::<RiskEvents>::policy(());
        let mut event = risk_event("e1", Severity::Critical, Scope::strategy("alpha"), t(0.0));
        event.reason = Some("drawdown 8%".into());
        assert_eq!(
            g.risk_event(event),
            ["pause strategy:alpha risk_event e1 [e1]"]
        );
        assert_eq!(
            g.last_command().reason,
            "risk event drawdown (critical) from noctus: drawdown 8%"
        );
        assert!(g.paused(&Scope::strategy("alpha")));
    }

    #[test]
    fn a_warning_or_info_risk_event_pauses_nothing_by_default() {
        let mut g = Given::<RiskEvents>::policy(());
        assert!(g
            .risk_event(noctus("e1", Severity::Warning, None))
            .is_empty());
        assert!(g.risk_event(noctus("e2", Severity::Info, None)).is_empty());
    }

    #[test]
    fn an_explicit_action_overrides_the_severitys_default() {
        let mut g = Given::<RiskEvents>::policy(());
        let quiet = noctus("e1", Severity::Critical, Some(RiskAction::None));
        assert!(g.risk_event(quiet).is_empty());
        let loud = noctus("e2", Severity::Info, Some(RiskAction::Pause));
        assert_eq!(g.risk_event(loud), ["pause global risk_event e2 [e2]"]);
    }

    #[test]
    fn a_second_risk_event_on_a_paused_scope_decides_no_second_command() {
        let mut g = Given::<RiskEvents>::policy(());
        g.risk_event(noctus("e1", Severity::Critical, None));
        assert!(g
            .risk_event(noctus("e2", Severity::Critical, None))
            .is_empty());
    }

    #[test]
    fn a_worker_pauses_nothing_for_a_risk_event() {
        let mut g = Given::<RiskEvents>::policy(()).on_a_worker();
        assert!(g
            .risk_event(noctus("e1", Severity::Critical, None))
            .is_empty());
        assert!(!g.paused(&Scope::Global));
    }
}
