//! sta-tracker: the swarm registry and its HTTP and UDP front ends.
