//! What the hook commands refuse, and how they fail.
