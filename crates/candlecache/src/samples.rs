//! The real candles bundled into the binary (from `tests/fixtures/market`), for
//! `candlecache demo` and `serve --demo`. Embedded once.

/// (file name, contents): the names carry the symbol and timeframe, as exchange files do.
pub(crate) const SAMPLES: &[(&str, &[u8])] = &[
    (
        "XRPETH-1m.csv",
        include_bytes!("../../../tests/fixtures/market/XRPETH-1m.csv"),
    ),
    (
        "XRPETH-5m.csv",
        include_bytes!("../../../tests/fixtures/market/XRPETH-5m.csv"),
    ),
    (
        "XRP_USDT_USDT-1h-futures.json",
        include_bytes!("../../../tests/fixtures/market/XRP_USDT_USDT-1h-futures.json"),
    ),
];
