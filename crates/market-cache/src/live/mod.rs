//! The live edge: its rules ([`edge`]: freshness, close grace, how long the edge may be
//! kept) and the upstream's streams that keep it fresh ([`streams`]).

pub(crate) mod edge;
pub(crate) mod streams;
