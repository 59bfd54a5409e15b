//! One active guard, any number of hot standbys (CONTRACT §5 layer 2).
//!
//! Every instance tails the changelog. An instance becomes active when no other
//! instance has renewed its lease for [`LEASE_TIMEOUT`]; it then restores the newest
//! of its local checkpoint and the changelog's snapshot, seeks the inputs to the
//! offsets stored with it, and hands the changelog's publishing to its store writer. An active instance that sees a live lease of an instance
//! with a smaller name steps down (checkpoint, release the inputs, back to standby).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tracing::{info, warn};

use super::changelog::Changelog;
use super::config::LiveConfig;
use super::heartbeat::Beacon;
use super::pipeline::{LiveError, LiveGuard};
use super::status::StatusHandle;
use super::store::Store;

/// How long an active instance may stay silent before a standby takes over.
pub const LEASE_TIMEOUT: Duration = Duration::from_secs(3);

/// Runs the guard as active or standby until `stop` is set.
///
/// # Errors
/// [`LiveError`] when the broker or the store fails beyond recovery.
pub fn run<S: Store>(
    config: LiveConfig,
    mut store: S,
    status: StatusHandle,
    stop: &AtomicBool,
) -> Result<(), LiveError> {
    let mut changelog = Changelog::open(&config)?;
    changelog.own_store(store.id());
    let mut beacon = Beacon::open(&config)?;
    beacon.report_to(&status);
    changelog.catch_up(Duration::from_millis(700));
    loop {
        if let Some(lease) = changelog.other_active(LEASE_TIMEOUT) {
            info!(active = %lease.instance, "standby: another instance is active; tailing the changelog");
            let mut s = status.edit();
            s.role = "standby";
            s.ready = false;
            drop(s);
            status.publish();
        }
        while changelog.other_active(LEASE_TIMEOUT).is_some() {
            if stop.load(Ordering::Relaxed) {
                beacon.stand_down();
                return Ok(());
            }
            beacon.beat(None);
            changelog.poll(Duration::from_millis(100));
        }
        info!(instance = %config.instance, "taking the active role");
        // Before restoring, which takes a while: a peer starting meanwhile sees it.
        changelog.announce();
        let snapshot = changelog.latest();
        // From here on the store writer publishes the changelog; this instance reads
        // back only the lease.
        let publisher = changelog.activate()?;
        let mut guard = LiveGuard::start_from(
            config.clone(),
            store,
            status.clone(),
            snapshot.as_ref(),
            Some(publisher),
        )?;
        drop(snapshot);
        let stepped_down = loop {
            if stop.load(Ordering::Relaxed) {
                break false;
            }
            guard.turn(guard.sleep_limit());
            beacon.beat(Some(guard.engine()));
            changelog.poll(Duration::ZERO);
            changelog.publish_lease();
            if let Some(other) = changelog.other_active(LEASE_TIMEOUT) {
                if other.instance < config.instance {
                    warn!(other = %other.instance, "another instance is active too; stepping down");
                    changelog.step_down();
                    break true;
                }
            }
        };
        guard.shutdown();
        beacon.stand_down();
        // Stepping down, it says nothing more: its lease would keep a standby from
        // taking over from the instance that stays, should that one die now.
        if !stepped_down {
            changelog.publish_lease();
        }
        // The writer publishes its last snapshot before it hands the store back.
        store = guard.into_store();
        changelog.flush();
        if !stepped_down {
            return Ok(());
        }
        back_to_standby(&mut changelog, &mut beacon, stop)?;
    }
}

/// After stepping down: reads the changelog again ([`Changelog::deactivate`]), then,
/// as the leases read again may look old by now (the read takes a while) while the
/// instance that stays renews its own every second, listens for a lease's lifetime
/// before the caller judges whether it is gone.
fn back_to_standby(
    changelog: &mut Changelog,
    beacon: &mut Beacon,
    stop: &AtomicBool,
) -> Result<(), LiveError> {
    changelog.deactivate()?;
    let listening = std::time::Instant::now();
    while listening.elapsed() < LEASE_TIMEOUT && !stop.load(Ordering::Relaxed) {
        beacon.beat(None);
        changelog.poll(Duration::from_millis(100));
    }
    Ok(())
}
