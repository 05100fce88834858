//! A front's copy of the daemon's sessions. The daemon sends every event once; the front
//! folds each into the session's state exactly as the daemon did ([`SessionState::apply`]),
//! publishes the new view and only then announces the event, so whoever hears of an event
//! and reads a view sees the view with that event in it (the invariant the session actors
//! keep in the daemon).
//!
//! One task writes ([`Folded`], owned by the connection's supervisor in `remote.rs`); every
//! reader (list, code actions, diagnostics) reads [`Mirror`] without waiting on it.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use dashmap::DashMap;
use tokio::sync::{Notify, broadcast};

use crate::session::{AnnouncedEvent, SessionView};
use crate::vocab::{Event, EventRecord, SessionState};

/// What readers see: a view per session and the events, announced after the view is new.
pub struct Mirror {
    views: DashMap<String, Arc<SessionView>>,
    /// The `seq` each session had when this front first heard of it.
    taken_up: DashMap<String, u64>,
    events: broadcast::Sender<AnnouncedEvent>,
    /// Sessions went away without an event (deleted): what is shown for them must go.
    pub removed: Arc<Notify>,
    /// Tasks of the repositories this editor follows, each time one changed.
    pub tasks: broadcast::Sender<crate::vocab::TaskInfo>,
    /// Bumped each time the writer is done with a batch: for whoever waits for a session to
    /// reach a `seq` (see [`Mirror::caught_up`]).
    changed: tokio::sync::watch::Sender<u64>,
}

impl Mirror {
    pub fn new() -> Arc<Mirror> {
        Arc::new(Mirror {
            views: DashMap::new(),
            taken_up: DashMap::new(),
            events: broadcast::channel(16_384).0,
            removed: Arc::new(Notify::new()),
            tasks: broadcast::channel(256).0,
            changed: tokio::sync::watch::Sender::new(0),
        })
    }

    pub fn view(&self, id: &str) -> Option<Arc<SessionView>> {
        self.views.get(id).map(|view| view.clone())
    }

    pub fn views(&self) -> impl Iterator<Item = Arc<SessionView>> + '_ {
        self.views.iter().map(|entry| entry.value().clone())
    }

    pub fn subscribe(&self) -> broadcast::Receiver<AnnouncedEvent> {
        self.events.subscribe()
    }

    /// Each session: its id, its newest `seq`, and the `seq` it was taken up at.
    pub fn positions(&self) -> Vec<(Arc<str>, u64, u64)> {
        self.views
            .iter()
            .map(|entry| {
                let id = entry.key();
                let taken_up = self.taken_up.get(id).map_or(0, |seq| *seq);
                (
                    Arc::from(id.as_str()),
                    entry.value().info.last_seq,
                    taken_up,
                )
            })
            .collect()
    }

    /// Waits (at most `patience`) until session `id` is mirrored up to `seq`: a front that
    /// answers its editor with what the daemon said first lets its mirror catch up, so that
    /// what the editor asks next (code actions, `list`) agrees with that answer.
    pub async fn caught_up(&self, id: &str, seq: u64, patience: std::time::Duration) {
        let mut changed = self.changed.subscribe();
        let reached = || self.view(id).is_some_and(|view| view.info.last_seq >= seq);
        let _ = tokio::time::timeout(patience, async {
            while !reached() {
                if changed.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
    }

    /// Waits (at most `patience`) until none of `ids` is mirrored any more: a front that
    /// answers a request that deleted sessions lets the deletions arrive first.
    pub async fn dropped(&self, ids: &[String], patience: std::time::Duration) {
        let mut changed = self.changed.subscribe();
        let gone = || ids.iter().all(|id| !self.views.contains_key(id));
        let _ = tokio::time::timeout(patience, async {
            while !gone() {
                if changed.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
    }

    pub fn taken_up_at(&self, id: &str) -> Option<u64> {
        self.taken_up.get(id).map(|seq| *seq)
    }
}

/// What became of an event offered to the mirror.
#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    /// Folded in and announced.
    Folded,
    /// Already folded in (a reconnect reads some events twice).
    Duplicate,
    /// Events between the mirror's last `seq` (given) and this one are missing.
    Gap(u64),
    /// A session the mirror does not hold yet.
    Unknown,
}

/// The repositories an editor follows, shared by its link (which adds to it) and its
/// [`Folded`] (which reads it).
pub type Scope = Arc<std::sync::RwLock<HashSet<PathBuf>>>;

/// What is left to do after [`Folded::install`].
#[derive(Debug, PartialEq, Eq)]
pub enum Catch {
    Nothing,
    /// Read the session's events after this `seq`, fold them in and announce them.
    Fill(u64),
    /// Read the session's events after this `seq` and announce them (the state has them).
    Announce(u64),
}

/// The writer's side: the state each view is built from.
pub struct Folded {
    mirror: Arc<Mirror>,
    /// The repositories this editor follows (its workspace folders', and those it started
    /// sessions in): the sessions of other repositories are not its business.
    scope: Scope,
    /// Sessions heard of and left out (another repository's): their events are dropped.
    ignored: HashSet<String>,
    states: HashMap<String, (SessionState, bool)>,
    /// Events folded in and not yet announced: announced together by [`Folded::flush`], so
    /// that events that came together (one actor step's item and status, say) are in the
    /// views before any of them is heard of.
    unannounced: Vec<AnnouncedEvent>,
}

impl Folded {
    pub fn new(mirror: Arc<Mirror>, scope: Scope) -> Folded {
        Folded {
            mirror,
            scope,
            ignored: HashSet::new(),
            states: HashMap::new(),
            unannounced: Vec::new(),
        }
    }

    /// The repositories of the sessions held: a new daemon must load them again.
    pub fn repositories(&self) -> Vec<std::path::PathBuf> {
        let mut repos: Vec<_> = self
            .states
            .values()
            .map(|(state, _)| state.spec.repo.clone())
            .collect();
        repos.sort();
        repos.dedup();
        repos
    }

    /// Tells the editor of a task's change, if it follows the task's repository.
    pub fn task_changed(&self, task: crate::vocab::TaskInfo) {
        if self.in_scope(&task.repo) {
            let _ = self.mirror.tasks.send(task);
        }
    }

    fn in_scope(&self, repo: &Path) -> bool {
        self.scope
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(repo)
    }

    /// The scope grew: sessions left out may be in it now (the next refresh takes them).
    pub fn scope_changed(&mut self) {
        self.ignored.clear();
    }

    /// Folds `record` into session `id` and announces it.
    pub fn apply(&mut self, id: &str, record: EventRecord) -> Applied {
        if self.ignored.contains(id) {
            return Applied::Duplicate;
        }
        let Some((state, read_only)) = self.states.get_mut(id) else {
            if let Event::Created { session } = &record.event {
                if !self.in_scope(&session.repo) {
                    self.ignored.insert(id.to_owned());
                    return Applied::Duplicate;
                }
                let state = SessionState::new((**session).clone(), &record);
                self.mirror
                    .taken_up
                    .insert(id.to_owned(), record.seq.saturating_sub(1));
                self.states.insert(id.to_owned(), (state, false));
                self.publish(id);
                self.announce(id, record);
                return Applied::Folded;
            }
            return Applied::Unknown;
        };
        if record.seq <= state.last_seq {
            return Applied::Duplicate;
        }
        if record.seq > state.last_seq + 1 {
            return Applied::Gap(state.last_seq);
        }
        state.apply(&record);
        let view = match self.mirror.views.get(id) {
            Some(held) if SessionView::moves_only_counters(&record.event) => {
                held.with_counters(state)
            }
            _ => SessionView::build(state, *read_only, false),
        };
        self.mirror.views.insert(id.to_owned(), Arc::new(view));
        self.announce(id, record);
        Applied::Folded
    }

    /// Takes a session's state from the daemon; `news_from`: the last `seq` this front
    /// had heard of when it took the session up (its events after that are news to this
    /// front's subscribers). Says what is left to do: a session held already and behind the
    /// daemon is left as it is, to be caught up event by event ([`Catch::Fill`]); a new one
    /// is taken as it is, and what it did after `news_from` is to be announced
    /// ([`Catch::Announce`]).
    pub fn install(&mut self, state: SessionState, read_only: bool, news_from: u64) -> Catch {
        let id = state.spec.id.clone();
        if !self.states.contains_key(&id) && !self.in_scope(&state.spec.repo) {
            self.ignored.insert(id);
            return Catch::Nothing;
        }
        match self.states.get(&id) {
            Some((held, _)) if held.last_seq >= state.last_seq => Catch::Nothing,
            Some((held, _)) => Catch::Fill(held.last_seq),
            None => {
                let newest = state.last_seq;
                let news_from = news_from.min(newest);
                self.mirror.taken_up.insert(id.clone(), news_from);
                self.states.insert(id.clone(), (state, read_only));
                self.publish(&id);
                if newest > news_from {
                    Catch::Announce(news_from)
                } else {
                    Catch::Nothing
                }
            }
        }
    }

    /// Announces a session's `records` after `after` that its state holds already.
    pub fn announce_held(&mut self, id: &str, records: Vec<EventRecord>, after: u64) {
        let Some(newest) = self.states.get(id).map(|(state, _)| state.last_seq) else {
            return;
        };
        for record in records {
            if record.seq > after && record.seq <= newest {
                self.announce(id, record);
            }
        }
    }

    /// Puts the daemon's state in place of the one held, without announcing anything: for
    /// what could not be read event by event.
    pub fn replace(&mut self, state: SessionState, read_only: bool) {
        let id = state.spec.id.clone();
        let newer = self
            .states
            .get(&id)
            .is_none_or(|(held, _)| held.last_seq < state.last_seq);
        if newer {
            self.states.insert(id.clone(), (state, read_only));
            self.publish(&id);
        }
    }

    /// Forgets the sessions not in `present` (deleted while this front was away).
    pub fn keep_only(&mut self, present: &std::collections::HashSet<String>) {
        let gone: Vec<String> = self
            .states
            .keys()
            .filter(|id| !present.contains(*id))
            .cloned()
            .collect();
        for id in gone {
            self.remove(&id);
        }
    }

    /// Forgets a deleted session.
    pub fn remove(&mut self, id: &str) {
        if self.states.remove(id).is_some() {
            self.mirror.views.remove(id);
            self.mirror.taken_up.remove(id);
            self.mirror.removed.notify_one();
        }
    }

    fn publish(&self, id: &str) {
        if let Some((state, read_only)) = self.states.get(id) {
            let view = SessionView::build(state, *read_only, false);
            self.mirror.views.insert(id.to_owned(), Arc::new(view));
        }
    }

    fn announce(&mut self, id: &str, record: EventRecord) {
        self.unannounced.push(AnnouncedEvent {
            session_id: Arc::from(id),
            record: Arc::new(record),
        });
    }

    /// Announces what was folded in since the last flush, in order.
    pub fn flush(&mut self) {
        for event in self.unannounced.drain(..) {
            let _ = self.mirror.events.send(event);
        }
        self.mirror.changed.send_modify(|batch| *batch += 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::SessionStatus;

    fn scope_of(repo: &str) -> Scope {
        Arc::new(std::sync::RwLock::new(HashSet::from([PathBuf::from(repo)])))
    }

    #[test]
    fn sessions_of_repositories_the_editor_does_not_follow_are_left_out() {
        let mirror = Mirror::new();
        let scope = scope_of("/elsewhere");
        let mut folded = Folded::new(mirror.clone(), scope.clone());
        assert_eq!(folded.apply("s", created("s")), Applied::Duplicate);
        assert_eq!(
            folded.apply("s", status(2, SessionStatus::Running)),
            Applied::Duplicate,
            "dropped without asking the daemon"
        );
        assert!(mirror.view("s").is_none());
        // The editor opens the repository: the next refresh takes the session.
        scope.write().expect("lock").insert(PathBuf::from("/repo"));
        folded.scope_changed();
        let state = crate::store::fold(vec![created("s")]).expect("fold");
        assert_eq!(folded.install(state, false, 1), Catch::Nothing);
        assert!(mirror.view("s").is_some());
    }

    fn created(id: &str) -> EventRecord {
        let spec = crate::vocab::sample_spec(id);
        EventRecord {
            seq: 1,
            at: 1,
            event: Event::Created {
                session: Box::new(spec),
            },
        }
    }

    fn status(seq: u64, to: SessionStatus) -> EventRecord {
        EventRecord {
            seq,
            at: seq,
            event: Event::Status {
                status: to,
                activity: None,
                reason: None,
            },
        }
    }

    #[tokio::test]
    async fn an_event_is_announced_after_the_view_holds_it() {
        let mirror = Mirror::new();
        let mut events = mirror.subscribe();
        let mut folded = Folded::new(mirror.clone(), scope_of("/repo"));
        assert_eq!(folded.apply("s", created("s")), Applied::Folded);
        assert_eq!(
            folded.apply("s", status(2, SessionStatus::Running)),
            Applied::Folded
        );
        assert!(
            events.try_recv().is_err(),
            "announced together, at the flush"
        );
        folded.flush();
        for seq in [1, 2] {
            let announced = events.recv().await.expect("event");
            assert_eq!(announced.record.seq, seq);
        }
        let view = mirror.view("s").expect("view");
        assert_eq!(view.info.status, SessionStatus::Running);
        assert_eq!(view.info.last_seq, 2);

        assert_eq!(
            folded.apply("s", status(2, SessionStatus::Running)),
            Applied::Duplicate
        );
        assert_eq!(
            folded.apply("s", status(5, SessionStatus::Waiting)),
            Applied::Gap(2)
        );
        assert_eq!(
            folded.apply("t", status(3, SessionStatus::Waiting)),
            Applied::Unknown
        );
        assert_eq!(mirror.view("s").expect("view").info.last_seq, 2);
    }

    #[test]
    fn a_state_behind_the_daemon_asks_for_the_events_between() {
        let mirror = Mirror::new();
        let mut folded = Folded::new(mirror.clone(), scope_of("/repo"));
        folded.apply("s", created("s"));
        let mut newer = crate::store::fold(vec![created("s")]).expect("fold");
        newer.apply(&status(2, SessionStatus::Running));
        newer.apply(&status(3, SessionStatus::Waiting));
        assert_eq!(folded.install(newer.clone(), false, 0), Catch::Fill(1));
        folded.replace(newer.clone(), false);
        assert_eq!(mirror.view("s").expect("view").info.last_seq, 3);

        folded.keep_only(&Default::default());
        assert!(
            mirror.view("s").is_none(),
            "a session gone from the daemon goes"
        );

        // Taken up anew: what it did after the front heard of it is news, the rest is not.
        assert_eq!(folded.install(newer, false, 2), Catch::Announce(2));
        assert_eq!(mirror.taken_up_at("s"), Some(2));
        assert_eq!(mirror.view("s").expect("view").info.last_seq, 3);
    }
}
