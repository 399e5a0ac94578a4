//! Placeholder until the wrapper generator lands.
