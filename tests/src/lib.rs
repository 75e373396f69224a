//! End-to-end tests of candlecache live in `it/`; they run the real binary.
//! This library is empty on purpose.
