//! The scaler HTTP server: routes, webhook adapters, auth, metrics, health and graceful shutdown.
