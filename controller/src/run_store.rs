//! AnalysisRuns, watched once for both loops: the whole runs in the reflector store that the
//! AnalysisRun loop reconciles from, and beside it only each run's name and controller, indexed by
//! the controller's uid, so a Rollout finds its runs without a second copy of them.

use std::marker::PhantomData;
use std::sync::{Arc, Mutex, MutexGuard};

use futures::{Stream, StreamExt, stream};
use kube::ResourceExt;
use kube::api::ObjectMeta;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::store::Writer;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::Event;
use tokio::sync::mpsc;

use crate::api::AnalysisRun;
use crate::cache::Cache;

/// What the index keeps of a run: its name, namespace, resourceVersion and controller.
pub type RunOwner = PartialObjectMeta<AnalysisRun>;

/// Reconcile requests queued for the AnalysisRun loop before the watch waits for it.
const REQUESTS: usize = 1024;

pub struct RunStore {
    store: Store<AnalysisRun>,
    writer: Mutex<Writer<AnalysisRun>>,
    owners: Cache<RunOwner>,
    /// Where the AnalysisRun loop of the current leadership term takes its reconcile requests.
    requests: Mutex<Option<mpsc::Sender<ObjectRef<AnalysisRun>>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn controller_uid(run: &RunOwner) -> Option<String> {
    run.owner_references().iter().find(|o| o.controller == Some(true)).map(|o| o.uid.clone())
}

fn slim(run: &AnalysisRun) -> RunOwner {
    let meta = &run.metadata;
    let controller = run.owner_references().iter().filter(|o| o.controller == Some(true)).cloned().collect();
    let metadata = ObjectMeta {
        name: meta.name.clone(),
        namespace: meta.namespace.clone(),
        resource_version: meta.resource_version.clone(),
        owner_references: Some(controller),
        ..Default::default()
    };
    PartialObjectMeta { types: None, metadata, _phantom: PhantomData }
}

fn slim_event(event: &Event<AnalysisRun>) -> Event<RunOwner> {
    match event {
        Event::Apply(run) => Event::Apply(slim(run)),
        Event::Delete(run) => Event::Delete(slim(run)),
        Event::Init => Event::Init,
        Event::InitApply(run) => Event::InitApply(slim(run)),
        Event::InitDone => Event::InitDone,
    }
}

fn reference(run: &RunOwner) -> ObjectRef<AnalysisRun> {
    ObjectRef::new(&run.name_any()).within(&run.namespace().unwrap_or_default())
}

impl Default for RunStore {
    fn default() -> Self {
        let (store, writer) = reflector::store();
        RunStore { store, writer: Mutex::new(writer), owners: Cache::new(controller_uid), requests: Mutex::default() }
    }
}

impl RunStore {
    /// Whether the first complete list has arrived.
    pub fn synced(&self) -> bool {
        self.owners.synced()
    }

    /// The store the AnalysisRun loop reconciles from.
    pub fn reader(&self) -> Store<AnalysisRun> {
        self.store.clone()
    }

    /// The runs whose controller has the uid `uid`.
    pub fn controlled_by(&self, uid: &str) -> Vec<Arc<AnalysisRun>> {
        self.owners.indexed(uid).iter().filter_map(|run| self.store.get(&reference(run))).collect()
    }

    /// Applies a watch event. Returns the runs that changed, appeared or went away (as indexed).
    pub fn apply(&self, event: Event<AnalysisRun>) -> Vec<Arc<RunOwner>> {
        lock(&self.writer).apply_watcher_event(&event);
        self.owners.apply(slim_event(&event), |_| true)
    }

    /// The reconcile requests of a leadership term's AnalysisRun loop: every run there is now,
    /// then each one that changes (until the loop drops the stream).
    pub fn requests(&self) -> impl Stream<Item = ObjectRef<AnalysisRun>> + Send + 'static {
        let (sender, receiver) = mpsc::channel(REQUESTS);
        // Before the snapshot: a run that changes in between is requested twice, never missed.
        *lock(&self.requests) = Some(sender);
        let now: Vec<_> = self.store.state().iter().map(|run| ObjectRef::from_obj(run.as_ref())).collect();
        let changes =
            stream::unfold(
                receiver,
                |mut receiver| async move { receiver.recv().await.map(|request| (request, receiver)) },
            );
        stream::iter(now).chain(changes)
    }

    /// Asks the AnalysisRun loop, if one runs, to reconcile the `changed` runs that still exist.
    pub async fn request(&self, changed: &[Arc<RunOwner>]) {
        let Some(sender) = lock(&self.requests).clone() else { return };
        for run in changed.iter().map(|run| reference(run)) {
            if self.store.get(&run).is_some() && sender.send(run).await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    use super::*;

    fn run(name: &str, version: &str, controller: Option<&str>) -> AnalysisRun {
        let owner = |uid: &str| OwnerReference { uid: uid.into(), controller: Some(true), ..Default::default() };
        let mut run = AnalysisRun::new(name, Default::default());
        run.metadata.namespace = Some("ns".into());
        run.metadata.resource_version = Some(version.into());
        run.metadata.owner_references = controller.map(|uid| vec![owner(uid)]);
        run
    }

    fn names(runs: Vec<Arc<AnalysisRun>>) -> Vec<String> {
        let mut names: Vec<String> = runs.iter().map(|run| run.name_any()).collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn a_rollout_finds_its_runs_and_the_analysis_loop_hears_of_changes() {
        let runs = RunStore::default();
        runs.apply(Event::Init);
        runs.apply(Event::InitApply(run("a", "1", Some("r1"))));
        runs.apply(Event::InitApply(run("by-hand", "1", None)));
        assert!(!runs.synced());
        runs.apply(Event::InitDone);
        assert!(runs.synced());
        let mut requests = Box::pin(runs.requests());
        assert_eq!(names(runs.controlled_by("r1")), ["a"]);

        let changed = runs.apply(Event::Apply(run("b", "2", Some("r1"))));
        runs.request(&changed).await;
        assert_eq!(names(runs.controlled_by("r1")), ["a", "b"]);
        // Another controller takes "a" over.
        runs.apply(Event::Apply(run("a", "3", Some("r2"))));
        assert_eq!(names(runs.controlled_by("r1")), ["b"]);
        assert_eq!(names(runs.controlled_by("r2")), ["a"]);
        let gone = runs.apply(Event::Delete(run("b", "4", Some("r1"))));
        runs.request(&gone).await;
        assert!(runs.controlled_by("r1").is_empty());

        // Every run at the start of the term, then the one that changed; not the deleted one.
        let mut requested: Vec<String> = Vec::new();
        for _ in 0..3 {
            requested.push(requests.next().await.unwrap().name);
        }
        requested[..2].sort();
        assert_eq!(requested, ["a", "by-hand", "b"]);
        // The term is over: a change no longer waits for its loop.
        drop(requests);
        runs.request(&runs.apply(Event::Apply(run("c", "5", Some("r1"))))).await;
    }
}
