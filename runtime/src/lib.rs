//! Tributary runtime.
