//! sandpit's sandbox engine. It knows nothing of HTTP or databases, so it can be used and tested
//! alone. This first part probes what the host offers; the backends (native namespaces +
//! cgroups + seccomp, then Docker/Podman and Kubernetes) build on it.

pub mod host;
