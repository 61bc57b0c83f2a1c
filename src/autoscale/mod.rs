//! The autoscaler: pools, signals, the per-pool decision loop, strategies (Rhai) and the Pulumi actuator.
