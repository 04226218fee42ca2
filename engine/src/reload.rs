//! Reloading the rules when their file or folder changes on disk.
//!
//! Editors save by writing a temporary file and renaming it over the old
//! one. That replaces the inode a watch on the file itself would follow, so
//! a rules file is watched through its parent directory, with events
//! filtered by name. A save produces a burst of events, so the
//! reload waits until none has arrived for [`DEBOUNCE`].
//! [`Engine::reload_rules`] checks the whole new set before it swaps it in,
//! and keeps the old set when the new one is invalid.

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

/// Quiet time after the last change before the rules are reloaded.
pub const DEBOUNCE: Duration = Duration::from_millis(200);

#[derive(Debug, Error)]
pub enum WatchError {
    #[error("cannot watch `{path}` for changes: {source}")]
    Watch { path: String, source: notify::Error },
    #[error("cannot start the rules watcher thread: {0}")]
    Thread(std::io::Error),
}

/// A running watch of the rules path. Dropping it stops the watch and
/// waits for a reload in progress to finish.
pub struct RulesWatcher {
    watcher: Option<RecommendedWatcher>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for RulesWatcher {
    fn drop(&mut self) {
        // Dropping the watcher closes the event channel, which ends the
        // thread's loop.
        self.watcher.take();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the rules watcher thread panicked");
        }
    }
}

/// The files whose events concern the rules.
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
/// the rules, so those do not count. Metadata changes such as `touch` do
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
pub fn watch_rules(engine: Arc<Engine>) -> Result<RulesWatcher, WatchError> {
    let path = engine.rules_path().to_path_buf();
    let (watched, target) = if path.is_dir() {
        (path.clone(), Target::Folder)
    } else {
        let file_name = path.file_name().map(OsString::from).unwrap_or_default();
        (parent_directory(&path), Target::File(file_name))
    };

    let (sender, events) = std::sync::mpsc::channel();
    let watch_error = |source| WatchError::Watch {
        path: watched.display().to_string(),
        source,
    };
    let mut watcher = notify::recommended_watcher(sender).map_err(watch_error)?;
    watcher
        .watch(&watched, RecursiveMode::NonRecursive)
        .map_err(watch_error)?;

    let thread = std::thread::Builder::new()
        .name("rules-watcher".into())
        .spawn(move || reload_on_change(&engine, &events, &target))
        .map_err(WatchError::Thread)?;
    tracing::info!(
        path = %path.display(),
        watched = %watched.display(),
        debounce_ms = DEBOUNCE.as_millis() as u64,
        "watching the rules for changes"
    );
    Ok(RulesWatcher {
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
fn reload_on_change(engine: &Engine, events: &Receiver<notify::Result<Event>>, target: &Target) {
    while wait_for_change(events, target) {
        // Keep waiting while changes keep arriving within DEBOUNCE.
        loop {
            match wait_for_change_within(events, target, DEBOUNCE) {
                Wait::Changed => continue,
                Wait::Quiet => break,
                Wait::Closed => return,
            }
        }
        tracing::info!(path = %engine.rules_path().display(), "rules changed on disk: reloading");
        // reload_rules logs and counts its outcome, and keeps the old rules
        // when the new ones are invalid.
        let _ = engine.reload_rules();
    }
}

enum Wait {
    Changed,
    Quiet,
    Closed,
}

/// Blocks until an event concerns the rules. Returns `false` when the
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

/// Waits at most `timeout` for an event that concerns the rules.
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
    tracing::warn!(%error, "the rules watcher reported an error");
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
    fn folder_target_skips_hidden_and_other_files() {
        let create = EventKind::Create(CreateKind::File);
        assert!(Target::Folder.concerns(&event(create, "/rules.d/10-site.toml")));
        assert!(!Target::Folder.concerns(&event(create, "/rules.d/.10-site.toml.swp")));
        assert!(!Target::Folder.concerns(&event(create, "/rules.d/notes.md")));
    }
}
