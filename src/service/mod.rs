//! Services: discovery, the `pilum.yaml` schema, `${VAR}` expansion, selection and the dependency graph.
