//! The deploy orchestrator: build a plan (services x steps) and run it with barriers, a DAG, workers, retries, timeouts and cancellation, emitting events.
