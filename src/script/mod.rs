//! The Rhai host: one engine builder, the native API (one namespace per file in `api/`), and the module resolver.
