//! The one way pilum runs a child process (see `DESIGN.md`).
