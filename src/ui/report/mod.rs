//! Pictures pilum draws as self-contained files — inline SVG, no external asset, no network,
//! no command run: the run report (`--report`, `pilum report`) from the events of a run, kept
//! by [`record::Recorder`] and read as a timeline by [`timeline`], drawn by [`gantt`]; and the
//! dependency graph ([`graph`]); and the history timeline ([`history`]), drawn from deploy
//! records (`pilum history --html` is to come with them). [`markup`] holds what they share.

pub mod gantt;
pub mod graph;
#[cfg_attr(
    not(test),
    expect(
        dead_code,
        reason = "drawn by `pilum history --html`, which comes with the deploy records"
    )
)]
pub mod history;
pub mod markup;
pub mod record;
pub mod timeline;
