//! The one way to follow sessions' events: a [`Subscription`] hands out every event of every
//! session, in `seq` order per session, without gaps. The broadcast channel under it may drop
//! events for a subscriber that falls behind; the subscription then re-reads what it missed
//! from the sessions' durable record before handing out anything newer. So every subscriber
//! (the editor's notifications, diagnostics, progress, transcripts, loops, `tether run`)
//! handles a lag the same way, and none can miss, say, the `waiting` that closes a progress
//! spinner.
//!
//! The same subscription follows the sessions of this process (their logs are the record) and
//! a front's mirror of the daemon's sessions (the daemon is): see [`EventSource`].

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use futures_util::future::BoxFuture;
use tokio::sync::broadcast;

use super::{AnnouncedEvent, SessionManager};
use crate::vocab::EventRecord;

/// Where a [`Subscription`]'s sessions are recorded: what each has logged, and how to read
/// what a subscriber missed.
pub trait EventSource: Send + Sync + 'static {
    /// Every session known now: its id, its newest `seq`, and the `seq` it was taken up at
    /// (what it logged before that was never announced here).
    fn positions(&self) -> Vec<(Arc<str>, u64, u64)>;
    /// The `seq` session `id` was taken up at, if it is known yet.
    fn taken_up_at(&self, id: &str) -> Option<u64>;
    /// Session `id`'s recorded events after `since`, in order.
    fn read_since(
        &self,
        id: String,
        since: u64,
    ) -> BoxFuture<'static, Result<Vec<EventRecord>, String>>;
}

/// Every session's events, in order, without gaps. [`Subscription::next`] is cancel-safe.
pub struct Subscription {
    source: Arc<dyn EventSource>,
    receiver: broadcast::Receiver<AnnouncedEvent>,
    /// The last `seq` handed out (or current at subscription) per session.
    seen: HashMap<Arc<str>, u64>,
    /// Events re-read from the record, or held back until the gap before them is filled.
    backlog: VecDeque<AnnouncedEvent>,
    /// An event that arrived after a gap: handed out once the gap is filled.
    held: Option<AnnouncedEvent>,
    /// The channel dropped events: every session is checked before going on.
    lagged: bool,
}

/// The sessions of this process: their logs are the record.
struct LocalSessions(SessionManager);

impl EventSource for LocalSessions {
    fn positions(&self) -> Vec<(Arc<str>, u64, u64)> {
        self.0
            .inner
            .sessions
            .iter()
            .map(|entry| {
                let handle = entry.value();
                (
                    handle.id.clone(),
                    handle.view().info.last_seq,
                    handle.loaded_seq,
                )
            })
            .collect()
    }

    fn taken_up_at(&self, id: &str) -> Option<u64> {
        self.0
            .inner
            .sessions
            .get(id)
            .map(|handle| handle.loaded_seq)
    }

    fn read_since(
        &self,
        id: String,
        since: u64,
    ) -> BoxFuture<'static, Result<Vec<EventRecord>, String>> {
        let manager = self.0.clone();
        Box::pin(async move {
            match tokio::task::spawn_blocking(move || manager.get(&id, since)).await {
                Ok(Ok(snapshot)) => Ok(snapshot.events),
                Ok(Err(error)) => Err(error.to_string()),
                Err(error) => Err(format!("reading its log failed: {error}")),
            }
        })
    }
}

impl SessionManager {
    /// Follows every session's events from now on.
    pub fn subscribe(&self) -> Subscription {
        // Subscribed first: whatever is newer than the positions arrives through the channel.
        let receiver = self.inner.events.subscribe();
        Subscription::new(Arc::new(LocalSessions(self.clone())), receiver)
    }
}

impl Subscription {
    /// Follows `receiver`, which must have subscribed before `source`'s positions are read.
    pub fn new(
        source: Arc<dyn EventSource>,
        receiver: broadcast::Receiver<AnnouncedEvent>,
    ) -> Subscription {
        let seen = source
            .positions()
            .into_iter()
            .map(|(id, newest, _)| (id, newest))
            .collect();
        Subscription {
            source,
            receiver,
            seen,
            backlog: VecDeque::new(),
            held: None,
            lagged: false,
        }
    }

    /// Each session's last `seq` handed out (at first: as of the subscription).
    pub fn positions(&self) -> std::collections::BTreeMap<String, u64> {
        self.seen
            .iter()
            .map(|(id, seq)| (id.to_string(), *seq))
            .collect()
    }

    /// The next event; `None` once the source is gone.
    pub async fn next(&mut self) -> Option<AnnouncedEvent> {
        loop {
            if self.lagged {
                self.catch_up().await;
                self.lagged = false;
            }
            if let Some(held) = &self.held {
                let (id, seq) = (held.session_id.clone(), held.record.seq);
                let last = self.last_seq(&id);
                if seq > last + 1 {
                    self.fill(&id, last, seq - 1).await;
                }
                if let Some(held) = self.held.take() {
                    self.backlog.push_back(held);
                }
            }
            while let Some(event) = self.backlog.pop_front() {
                if self.is_new(&event) {
                    return Some(event);
                }
            }
            match self.receiver.recv().await {
                Ok(event) => {
                    self.meet(&event);
                    let last = self.last_seq(&event.session_id);
                    if event.record.seq > last + 1 {
                        self.held = Some(event);
                    } else if self.is_new(&event) {
                        return Some(event);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::debug!("a subscriber fell {missed} events behind; re-reading");
                    self.lagged = true;
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// A session first heard of after subscribing: loaded or created since. What it logged
    /// before it was taken up was never announced, so it is not a gap.
    fn meet(&mut self, event: &AnnouncedEvent) {
        if self.seen.contains_key(&event.session_id) {
            return;
        }
        let from_here = event.record.seq.saturating_sub(1);
        let baseline = match self.source.taken_up_at(&event.session_id) {
            Some(taken_up_at) => taken_up_at.min(from_here),
            // Not listed yet (it is being loaded or created): take it from here.
            None => from_here,
        };
        self.seen.insert(event.session_id.clone(), baseline);
    }

    fn last_seq(&self, session_id: &Arc<str>) -> u64 {
        self.seen.get(session_id).copied().unwrap_or(0)
    }

    /// Records `event` as handed out, unless it was already.
    fn is_new(&mut self, event: &AnnouncedEvent) -> bool {
        let last = self.seen.entry(event.session_id.clone()).or_insert(0);
        if event.record.seq <= *last {
            return false;
        }
        *last = event.record.seq;
        true
    }

    /// Queues what every session recorded beyond what was handed out.
    async fn catch_up(&mut self) {
        let behind: Vec<(Arc<str>, u64, u64)> = self
            .source
            .positions()
            .into_iter()
            .filter_map(|(id, newest, taken_up_at)| {
                let last = self.seen.get(&id).copied().unwrap_or(taken_up_at);
                (newest > last).then_some((id, last, newest))
            })
            .collect();
        for (id, last, newest) in behind {
            self.fill(&id, last, newest).await;
        }
    }

    /// Queues a session's recorded events after `since`, up to `until`.
    async fn fill(&mut self, session_id: &Arc<str>, since: u64, until: u64) {
        match self.source.read_since(session_id.to_string(), since).await {
            Ok(events) => {
                self.backlog
                    .extend(events.into_iter().filter(|record| record.seq <= until).map(
                        |record| AnnouncedEvent {
                            session_id: session_id.clone(),
                            record: Arc::new(record),
                        },
                    ));
            }
            // Deleted meanwhile, or its record cannot be read: go on with what comes.
            Err(error) => tracing::debug!("session {session_id}: {error}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::session::manager::actor::tests::new_actor;
    use crate::vocab::Event;

    /// A manager whose channel holds four events, with one session in it.
    fn manager_with_a_session(
        home: &Path,
    ) -> (SessionManager, Arc<super::super::actor::SessionHandle>) {
        let manager = SessionManager::with_event_capacity(home.to_owned(), Default::default(), 4)
            .expect("manager");
        let actor = new_actor(home, "fanout", manager.inner.events.clone());
        let handle = Arc::new(actor.spawn(&manager.inner.runtime));
        manager
            .inner
            .sessions
            .insert("fanout".to_owned(), handle.clone());
        (manager, handle)
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_gets_every_event_in_order_from_the_log() {
        let home = tempfile::tempdir().expect("tempdir");
        let (manager, handle) = manager_with_a_session(home.path());
        let mut subscription = manager.subscribe();
        for n in 0..50 {
            handle.tell(move |actor| {
                actor.emit_for_turn(Event::Delta {
                    item_id: "m".into(),
                    text: n.to_string(),
                })
            });
        }
        // All fifty are logged (and forty-six dropped from the four-event channel) before
        // the subscriber reads anything.
        handle
            .run(|actor| Ok(actor.state.last_seq))
            .await
            .expect("the actor answers");
        let mut texts = Vec::new();
        let mut seqs = Vec::new();
        while seqs.len() < 50 {
            let event = subscription.next().await.expect("an event");
            seqs.push(event.record.seq);
            if let Event::Delta { text, .. } = &event.record.event {
                texts.push(text.clone());
            }
        }
        assert_eq!(seqs, (2..=51).collect::<Vec<u64>>());
        assert_eq!(texts, (0..50).map(|n| n.to_string()).collect::<Vec<_>>());
        // And the next live event follows, once.
        handle.tell(|actor| {
            actor.emit_for_turn(Event::Delta {
                item_id: "m".into(),
                text: "live".into(),
            })
        });
        let event = subscription.next().await.expect("the live event");
        assert_eq!(event.record.seq, 52);
    }
}
