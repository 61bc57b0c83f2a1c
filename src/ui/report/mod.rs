//! Pictures pilum draws as self-contained files — inline SVG, no external asset, no network,
//! no command run: the run report (`--report`, `pilum report`) from the events of a run, kept
//! by [`record::Recorder`] and read as a timeline by [`timeline`], drawn by [`gantt`]; and the
//! dependency graph ([`graph`]). [`markup`] holds what they share.

pub mod gantt;
pub mod graph;
pub mod markup;
pub mod record;
pub mod timeline;
