//! `pilum status`, `pilum logs` and `pilum rollback`: every built-in cloud recipe's hooks run
//! against the strict fake CLIs (their argv transcripts pinned as the deploy steps' are), a
//! rollback dry run that runs nothing, and the failure paths: unknown services, recipes
//! without the hook, a provider CLI failing or hanging past its timeout, Ctrl-C.

mod errors;
mod output;
mod transcripts;
