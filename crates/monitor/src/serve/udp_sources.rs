//! Which heartbeat targets take authenticated UDP beats, as the listener's [`Verifier`] and
//! the engine need them, kept true across reloads.
//!
//! The verifier tags each beat with an index the caller chooses; here that index names a
//! ping id in a table that only grows (an id keeps its index for the monitor's lifetime, so a
//! batch verified just before a reload still names the right target). The engine takes beats
//! by ping id, not by its own table index, which a reload may change.
//!
//! What it is not: verification (`udp::Verifier`) or the socket (`udp::listen`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::mpsc;

use crate::config::{Config, TargetKind};
use crate::targets::TargetError;
use crate::udp::{Beat, Verifier};

#[derive(Debug)]
pub(crate) struct UdpSources {
    /// Ping ids by the index the verifier tags beats with.
    ids: RwLock<Vec<Arc<str>>>,
    /// The index of each ping id in `ids`.
    index: Mutex<HashMap<String, usize>>,
    /// New verifiers for the listener (a reload).
    updates: mpsc::Sender<Verifier>,
}

impl UdpSources {
    /// No sources yet, and the receiver the listener takes new verifiers from.
    pub(crate) fn new() -> (UdpSources, mpsc::Receiver<Verifier>) {
        let (updates, receiver) = mpsc::channel(4);
        let sources = UdpSources {
            ids: RwLock::new(Vec::new()),
            index: Mutex::new(HashMap::new()),
            updates,
        };
        (sources, receiver)
    }

    /// A verifier for every heartbeat target of `config` that has a UDP key (ping ids
    /// resolved). Refused like the configuration: a bad key or id names its target.
    pub(crate) fn verifier(&self, config: &Config) -> Result<Verifier, TargetError> {
        let mut verifier = Verifier::new(config.server.udp_max_skew);
        let mut index = self.index.lock().unwrap_or_else(|e| e.into_inner());
        for target in &config.targets {
            if let TargetKind::Heartbeat(heartbeat) = &target.kind
                && let Some(key) = &heartbeat.udp_key
                && let Some(ping_id) = &heartbeat.ping_id
            {
                let at = match index.get(ping_id) {
                    Some(at) => *at,
                    None => {
                        let mut ids = self.ids.write().unwrap_or_else(|e| e.into_inner());
                        ids.push(Arc::from(ping_id.as_str()));
                        index.insert(ping_id.clone(), ids.len() - 1);
                        ids.len() - 1
                    }
                };
                verifier
                    .add_source(ping_id, at, key)
                    .map_err(|error| TargetError {
                        target: target.id.clone(),
                        message: error.to_string(),
                    })?;
            }
        }
        Ok(verifier)
    }

    /// Hand `verifier` to the listener; it takes it before its next datagram.
    pub(crate) async fn replace(&self, verifier: Verifier) {
        if self.updates.send(verifier).await.is_err() {
            tracing::warn!("the udp listener is gone; its sources were not reloaded");
        }
    }

    /// The ping id of each beat, for the engine.
    pub(crate) fn ping_ids(&self, beats: &[Beat]) -> Vec<Option<Arc<str>>> {
        let ids = self.ids.read().unwrap_or_else(|e| e.into_inner());
        beats
            .iter()
            .map(|beat| ids.get(beat.target).cloned())
            .collect()
    }
}
