//! Local state: deploy history, locks and caches kept under `.pilum/`.
