//! The demo's two order gateways: the gate library in process, as a gateway embeds it
//! (CONTRACT §6). They follow the guard's pause state, commands and heartbeats, say
//! every change of a scope's effective mode, and acknowledge every command; one of them
//! is silenced later, and the guard says so (`command_unacknowledged`).

use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use gate::follow::{FollowConfig, Follower};
use gate::{Gate, GateHandle, ModeChange};
use guard::live::LiveConfig;

use super::{fail, Failure};

/// The gateways the demo's policy awaits acknowledgements from.
pub const GATEWAYS: [&str; 2] = ["gw-tokyo", "gw-osaka"];

/// How long a gateway may go without an active guard's heartbeat (CONTRACT default).
const MAX_SILENCE_MS: i64 = 3_000;

/// One in-process gateway.
struct Member {
    name: &'static str,
    handle: GateHandle,
    follower: Option<Follower>,
    changes: Receiver<ModeChange>,
}

/// The demo's gateways.
pub struct Gateways {
    members: Vec<Member>,
}

impl Gateways {
    /// Starts one follower per gateway on the demo's cluster and waits (up to 15 s)
    /// until each has read the pause state and heard the active guard.
    ///
    /// # Errors
    /// A run [`Failure`] when a follower cannot start.
    pub fn start(config: &LiveConfig) -> Result<Gateways, Failure> {
        let mut members = Vec::new();
        for name in GATEWAYS {
            let handle = GateHandle::new(Gate::new(name, MAX_SILENCE_MS));
            let changes = handle.subscribe();
            let mut follow = FollowConfig::new(config.brokers.clone());
            // The guard's own input latency: a fetch answered within a millisecond.
            follow.fetch_wait_ms = 1;
            let follower = Follower::start(follow, handle.clone())
                .map_err(|e| fail(&format!("cannot start gateway {name}"), &e))?;
            members.push(Member {
                name,
                handle,
                follower: Some(follower),
                changes,
            });
        }
        let gateways = Gateways { members };
        let deadline = Instant::now() + Duration::from_secs(15);
        while gateways
            .members
            .iter()
            .any(|m| m.handle.may_trade("alpha") != gate::Mode::Running)
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        gateways.print_changes();
        Ok(gateways)
    }

    /// Prints every change of a scope's mode the gateways reported since the last call.
    pub fn print_changes(&self) {
        for member in &self.members {
            for change in member.changes.try_iter() {
                let why = change
                    .reason
                    .as_deref()
                    .map(|r| format!(" ({r}: fail closed)"))
                    .or_else(|| change.command_id.as_ref().map(|c| format!(" ({c})")))
                    .unwrap_or_default();
                println!(
                    "    {:<9} {} is {}{why}",
                    member.name,
                    change.scope,
                    change.mode.as_str()
                );
            }
        }
    }

    /// Stops `name`'s follower: from now on it acknowledges nothing (a gateway that
    /// crashed or lost its consumer).
    pub fn silence(&mut self, name: &str) {
        if let Some(member) = self.members.iter_mut().find(|m| m.name == name) {
            if let Some(follower) = member.follower.take() {
                let _ = follower.stop();
            }
            println!("    {name} stopped: it will acknowledge nothing more");
        }
    }

    /// Stops every follower (before the cluster goes).
    pub fn stop(mut self) {
        for member in &mut self.members {
            if let Some(follower) = member.follower.take() {
                let _ = follower.stop();
            }
        }
    }
}
