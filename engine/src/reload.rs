//! Reloading the rules and the model when their files change on disk.
//!
//! Editors save by writing a temporary file and renaming it over the old
//! one, and so do `mv` and `ModelArtifact::save`. That replaces the inode a
//! watch on the file itself would follow, so a rules file or a model
//! artifact is watched through its parent directory, with events filtered
//! by name. A save produces a burst of events, so the reload waits until
//! none has arrived for [`DEBOUNCE`]. [`Engine::reload_rules`] and
//! [`Engine::reload_model`] check the whole new file before they swap it
//! in, and keep the old one when the new one is invalid.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use thiserror::Error;

use crate::engine::Engine;

/// Quiet time after the last change before the rules or the model are reloaded.
pub const DEBOUNCE: Duration = Duration::from_millis(200);

#[derive(Debug, Error)]
pub enum WatchError {
    #[error("cannot watch `{path}` for changes: {source}")]
    Watch { path: String, source: notify::Error },
    #[error("cannot start the {kind} watcher thread: {source}")]
    Thread {
        kind: &'static str,
        source: std::io::Error,
    },
}

/// A running watch of the rules path or the model file. Dropping it stops
/// the watch and waits for a reload in progress to finish.
pub struct FileWatcher {
    kind: Kind,
    watcher: Option<RecommendedWatcher>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for FileWatcher {
    fn drop(&mut self) {
        // Dropping the watcher closes the event channel, which ends the
        // thread's loop.
        self.watcher.take();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!(kind = self.kind.name(), "the watcher thread panicked");
        }
    }
}

/// The part of the configuration a watcher reloads.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Rules,
    Model,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Rules => "rules",
            Kind::Model => "model",
        }
    }

    /// Reloads this part. The engine logs and counts the outcome, and keeps
    /// the previous version when the new file is invalid.
    fn reload(self, engine: &Engine) {
        let _ = match self {
            Kind::Rules => engine.reload_rules(),
            Kind::Model => engine.reload_model(),
        };
    }
}

/// The files whose events concern the rules or the model.
#[derive(Debug, Clone)]
enum Target {
    /// One file, watched through its directory: events on this name.
    File(OsString),
    /// A folder: events on its `*.toml` files that are not hidden.
    Folder,
}

impl Target {
    fn concerns(&self, event: &Event) -> bool {
        if !changes_content(&event.kind) {
            return false;
        }
        event.paths.iter().any(|path| {
            let Some(name) = path.file_name() else {
                return false;
            };
            match self {
                Target::File(file_name) => name == file_name,
                Target::Folder => {
                    let name = name.to_string_lossy();
                    !name.starts_with('.') && name.ends_with(".toml")
                }
            }
        })
    }
}

/// Checks whether an event kind can change what a file contains. Opening
/// and reading a file produce access events, and the reload itself reads
/// the file, so those do not count. Metadata changes such as `touch` do
/// not count either.
fn changes_content(kind: &EventKind) -> bool {
    match kind {
        EventKind::Create(_) | EventKind::Remove(_) => true,
        EventKind::Modify(ModifyKind::Metadata(_)) => false,
        EventKind::Modify(_) => true,
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) | EventKind::Any | EventKind::Other => false,
    }
}

/// Starts watching the engine's rules path and reloads the rules after
/// each change. Keep the returned watcher alive as long as reloads should
/// happen.
pub fn watch_rules(engine: Arc<Engine>) -> Result<FileWatcher, WatchError> {
    let path = engine.rules_path().to_path_buf();
    let (watched, target) = if path.is_dir() {
        (path.clone(), Target::Folder)
    } else {
        file_target(&path)
    };
    watch(engine, Kind::Rules, &path, watched, target)
}

/// Starts watching the engine's model artifact file and reloads the model
/// after each change. Returns `None` when the model is not read from a
/// file. Keep the returned watcher alive as long as reloads should happen.
pub fn watch_model(engine: Arc<Engine>) -> Result<Option<FileWatcher>, WatchError> {
    let Some(path) = engine.model_path().map(Path::to_path_buf) else {
        return Ok(None);
    };
    let (watched, target) = file_target(&path);
    watch(engine, Kind::Model, &path, watched, target).map(Some)
}

/// Returns the directory to watch for `path` and the target that filters
/// its events by file name.
fn file_target(path: &Path) -> (PathBuf, Target) {
    let file_name = path.file_name().map(OsString::from).unwrap_or_default();
    (parent_directory(path), Target::File(file_name))
}

fn watch(
    engine: Arc<Engine>,
    kind: Kind,
    path: &Path,
    watched: PathBuf,
    target: Target,
) -> Result<FileWatcher, WatchError> {
    let (sender, events) = std::sync::mpsc::channel();
    let watch_error = |source| WatchError::Watch {
        path: watched.display().to_string(),
        source,
    };
    let mut watcher = notify::recommended_watcher(sender).map_err(watch_error)?;
    watcher
        .watch(&watched, RecursiveMode::NonRecursive)
        .map_err(watch_error)?;

    let thread_path = path.to_path_buf();
    let thread = std::thread::Builder::new()
        .name(format!("{}-watcher", kind.name()))
        .spawn(move || reload_on_change(&engine, kind, &thread_path, &events, &target))
        .map_err(|source| WatchError::Thread {
            kind: kind.name(),
            source,
        })?;
    tracing::info!(
        kind = kind.name(),
        path = %path.display(),
        watched = %watched.display(),
        debounce_ms = DEBOUNCE.as_millis() as u64,
        "watching for changes"
    );
    Ok(FileWatcher {
        kind,
        watcher: Some(watcher),
        thread: Some(thread),
    })
}

fn parent_directory(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Waits for a change, lets the burst of events settle and reloads, until
/// the channel closes.
fn reload_on_change(
    engine: &Engine,
    kind: Kind,
    path: &Path,
    events: &Receiver<notify::Result<Event>>,
    target: &Target,
) {
    while wait_for_change(events, target) {
        // Keep waiting while changes keep arriving within DEBOUNCE.
        loop {
            match wait_for_change_within(events, target, DEBOUNCE) {
                Wait::Changed => continue,
                Wait::Quiet => break,
                Wait::Closed => return,
            }
        }
        tracing::info!(kind = kind.name(), path = %path.display(), "changed on disk: reloading");
        kind.reload(engine);
    }
}

enum Wait {
    Changed,
    Quiet,
    Closed,
}

/// Blocks until an event concerns the target. Returns `false` when the
/// channel closed.
fn wait_for_change(events: &Receiver<notify::Result<Event>>, target: &Target) -> bool {
    loop {
        match events.recv() {
            Ok(Ok(event)) if target.concerns(&event) => return true,
            Ok(Ok(_)) => {}
            Ok(Err(error)) => log_watch_error(&error),
            Err(_) => return false,
        }
    }
}

/// Waits at most `timeout` for an event that concerns the target.
fn wait_for_change_within(
    events: &Receiver<notify::Result<Event>>,
    target: &Target,
    timeout: Duration,
) -> Wait {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match events.recv_timeout(left) {
            Ok(Ok(event)) if target.concerns(&event) => return Wait::Changed,
            Ok(Ok(_)) => {}
            Ok(Err(error)) => log_watch_error(&error),
            Err(RecvTimeoutError::Timeout) => return Wait::Quiet,
            Err(RecvTimeoutError::Disconnected) => return Wait::Closed,
        }
    }
}

fn log_watch_error(error: &notify::Error) {
    tracing::warn!(%error, "the file watcher reported an error");
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, DataChange, MetadataKind, RenameMode};

    fn event(kind: EventKind, path: &str) -> Event {
        Event::new(kind).add_path(PathBuf::from(path))
    }

    #[test]
    fn file_target_filters_by_name() {
        let target = Target::File("rules.toml".into());
        let write = EventKind::Modify(ModifyKind::Data(DataChange::Any));
        assert!(target.concerns(&event(write, "/etc/riskgate/rules.toml")));
        assert!(!target.concerns(&event(write, "/etc/riskgate/other.toml")));
        let rename = EventKind::Modify(ModifyKind::Name(RenameMode::To));
        assert!(target.concerns(&event(rename, "/etc/riskgate/rules.toml")));
    }

    #[test]
    fn reads_and_metadata_ignored() {
        let target = Target::File("rules.toml".into());
        for kind in [
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
            EventKind::Modify(ModifyKind::Metadata(MetadataKind::WriteTime)),
        ] {
            assert!(
                !target.concerns(&event(kind, "/etc/riskgate/rules.toml")),
                "{kind:?}"
            );
        }
        let closed = EventKind::Access(AccessKind::Close(AccessMode::Write));
        assert!(target.concerns(&event(closed, "/etc/riskgate/rules.toml")));
    }

    #[test]
    fn model_file_watched_through_directory() {
        let (watched, target) = file_target(Path::new("/etc/riskgate/models/login.json"));
        assert_eq!(watched, PathBuf::from("/etc/riskgate/models"));
        let rename = EventKind::Modify(ModifyKind::Name(RenameMode::To));
        assert!(target.concerns(&event(rename, "/etc/riskgate/models/login.json")));
        // `ModelArtifact::save` writes a temporary file in the same folder first.
        let create = EventKind::Create(CreateKind::File);
        assert!(!target.concerns(&event(create, "/etc/riskgate/models/.tmpXk3e9a")));

        let (watched, _) = file_target(Path::new("login.json"));
        assert_eq!(watched, PathBuf::from("."));
    }

    #[test]
    fn folder_target_skips_hidden_and_other_files() {
        let create = EventKind::Create(CreateKind::File);
        assert!(Target::Folder.concerns(&event(create, "/rules.d/10-site.toml")));
        assert!(!Target::Folder.concerns(&event(create, "/rules.d/.10-site.toml.swp")));
        assert!(!Target::Folder.concerns(&event(create, "/rules.d/notes.md")));
    }
}
