//! The deployment of iot-etl: `deploy/Dockerfile`, `deploy/entrypoint.sh` and the Kubernetes
//! manifests under `deploy/k8s/`. This crate holds no code; its tests (`tests/`) parse every
//! manifest into the Kubernetes API types and check the invariants the engine relies on, and
//! run the entrypoint's hostfile generation with a fake pod name.
#![deny(missing_docs)]
