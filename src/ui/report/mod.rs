//! Pictures pilum draws as self-contained files — inline SVG, no external asset, no network,
//! no command run: the run report (`--report`, `pilum report`) from the events of a run, kept
//! by [`record::Recorder`] and read as a timeline by [`timeline`], drawn by [`gantt`]; and the
//! dependency graph ([`graph`]); and the history timeline ([`history`]), drawn from the state
//! backend's deploy records by `pilum history --html`. [`markup`] holds what they share.

pub(crate) mod gantt;
pub(crate) mod graph;
pub(crate) mod history;
pub(crate) mod markup;
pub(crate) mod record;
pub(crate) mod timeline;
