//! What a file is: its sources (the file, or each entry of a zip), their format detected
//! from content, and the symbol, timeframe and kind their names say. The rows themselves
//! are read in `rows.rs`.

use std::fs::File;
use std::io::{BufRead, BufReader, Cursor, Read};
use std::path::{Path, PathBuf};

use crate::{Candle, Error, Kind, Result, Symbol, Timeframe};

/// A detected file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    BinanceCsv,
    HeaderCsv,
    FreqtradeJson,
    Parquet,
}

impl Format {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::BinanceCsv => "binance-csv",
            Self::HeaderCsv => "csv",
            Self::FreqtradeJson => "freqtrade-json",
            Self::Parquet => "parquet",
        }
    }
}

/// Where a source's bytes are.
pub(crate) enum Data {
    File(PathBuf, u64),
    Memory(Vec<u8>),
}

/// One importable unit: a file, or an entry of a zip.
pub(crate) struct Source {
    pub(crate) name: String,
    pub(crate) format: Format,
    pub(super) data: Data,
}

/// A row's location and candle, or its location and what is wrong.
pub(crate) type Row = std::result::Result<(Loc, Candle), (Loc, String)>;

/// Where a row is: `line N` in text files, `row N` in JSON and Parquet. Turned into text
/// only for rejected rows.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Loc {
    pub(super) kind: &'static str,
    pub(super) n: u64,
}

impl std::fmt::Display for Loc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind, self.n)
    }
}

pub(super) fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub(super) fn malformed(
    file: &str,
    location: impl Into<String>,
    reason: impl Into<String>,
) -> Error {
    Error::Malformed {
        file: file.to_owned(),
        location: location.into(),
        reason: reason.into(),
    }
}

/// Opens `path` and returns what it holds: itself, or each entry of a zip.
pub(crate) fn sources(path: &Path) -> Result<Vec<Source>> {
    let mut f = File::open(path).map_err(io(path))?;
    let len = f.metadata().map_err(io(path))?.len();
    let mut head = [0u8; 4096];
    let n = read_up_to(&mut f, &mut head).map_err(io(path))?;
    let name = path.display().to_string();
    if head[..n].starts_with(ZIP_MAGIC) {
        let file = File::open(path).map_err(io(path))?;
        return zip_sources(file, &name);
    }
    let format = detect(&head[..n], &name)?;
    Ok(vec![Source {
        name,
        format,
        data: Data::File(path.to_path_buf(), len),
    }])
}

/// What `data` (a file's bytes, called `name`) holds: itself, or each entry of a zip.
pub(crate) fn memory_sources(name: &str, data: Vec<u8>) -> Result<Vec<Source>> {
    if data.starts_with(ZIP_MAGIC) {
        return zip_sources(std::io::Cursor::new(data), name);
    }
    let format = detect(&data[..data.len().min(4096)], name)?;
    Ok(vec![Source {
        name: name.to_owned(),
        format,
        data: Data::Memory(data),
    }])
}

const ZIP_MAGIC: &[u8] = b"PK\x03\x04";

/// Every file entry of the zip archive `reader` (called `name`), read into memory.
fn zip_sources<R: Read + std::io::Seek>(reader: R, name: &str) -> Result<Vec<Source>> {
    let mut zip =
        zip::ZipArchive::new(reader).map_err(|e| malformed(name, "zip", e.to_string()))?;
    let mut out = Vec::new();
    for i in 0..zip.len() {
        let mut entry = zip
            .by_index(i)
            .map_err(|e| malformed(name, "zip", e.to_string()))?;
        if entry.is_dir() {
            continue;
        }
        let inner = entry
            .name()
            .map_or_else(|_| format!("entry {}", i + 1), |n| n.into_owned());
        let entry_name = format!("{name}!{inner}");
        let data = super::read_all(&mut entry, &entry_name)?;
        let format = detect(&data, &entry_name)?;
        out.push(Source {
            name: entry_name,
            format,
            data: Data::Memory(data),
        });
    }
    if out.is_empty() {
        return Err(malformed(name, "zip", "the archive holds no files"));
    }
    Ok(out)
}

fn read_up_to(f: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn detect(head: &[u8], name: &str) -> Result<Format> {
    if head.starts_with(b"PAR1") {
        return Ok(Format::Parquet);
    }
    let text = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
    let first = text.iter().position(|b| !b.is_ascii_whitespace());
    let Some(first) = first else {
        return Err(malformed(name, "line 1", "the file is empty"));
    };
    if text[first] == b'[' {
        return Ok(Format::FreqtradeJson);
    }
    if std::str::from_utf8(&text[..text.len().min(1024)]).is_err() && !text.contains(&b'\n') {
        return Err(malformed(
            name,
            "line 1",
            "not a text, JSON, Parquet or zip file",
        ));
    }
    let line = text[first..]
        .split(|b| *b == b'\n')
        .next()
        .unwrap_or_default();
    let field = line.split(|b| *b == b',').next().unwrap_or_default();
    let field = String::from_utf8_lossy(field);
    let field = field.trim().trim_matches('"');
    if !field.is_empty() && field.bytes().all(|b| b.is_ascii_digit()) {
        Ok(Format::BinanceCsv)
    } else {
        Ok(Format::HeaderCsv)
    }
}

/// What a file name says its rows are: freqtrade names its futures data
/// `PAIR-TF-futures.json` and `PAIR-TF-mark.json`, and keeps funding rates (no candles) in
/// `PAIR-TF-funding_rate.json`; anything else says nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NamedAs {
    Unsaid,
    Kind(Kind),
    FundingRates,
}

pub(crate) fn name_kind(name: &str) -> NamedAs {
    let base = name.rsplit(['/', '\\', '!']).next().unwrap_or(name);
    let stem = base.split('.').next().unwrap_or(base);
    match stem.split('-').nth(2) {
        Some("futures") => NamedAs::Kind(Kind::Futures),
        Some("mark") => NamedAs::Kind(Kind::Mark),
        Some("funding_rate") => NamedAs::FundingRates,
        _ => NamedAs::Unsaid,
    }
}

/// Reads symbol and timeframe from Binance- or freqtrade-style names:
/// `BTCUSDT-1m-2024-01.csv`, `XRPETH-5m.csv`, `XRP_USDT_USDT-1h-futures.json`.
pub(crate) fn names(name: &str) -> (Option<Symbol>, Option<Timeframe>) {
    let base = name.rsplit(['/', '\\', '!']).next().unwrap_or(name);
    let stem = base.split('.').next().unwrap_or(base);
    let mut parts = stem.split('-');
    let symbol = parts.next().and_then(|s| {
        // freqtrade writes pairs as BASE_QUOTE or BASE_QUOTE_SETTLE.
        let pieces: Vec<&str> = s.split('_').collect();
        let joined = if pieces.len() >= 2 {
            format!("{}{}", pieces[0], pieces[1])
        } else {
            s.to_owned()
        };
        joined.parse().ok()
    });
    let tf = parts.next().and_then(|t| t.parse().ok());
    (symbol, tf)
}

impl Source {
    /// The size of the source in bytes.
    pub(crate) fn len(&self) -> u64 {
        match &self.data {
            Data::File(_, len) => *len,
            Data::Memory(v) => v.len() as u64,
        }
    }

    pub(super) fn reader(&self) -> Result<Box<dyn BufRead + '_>> {
        Ok(match &self.data {
            Data::File(p, _) => Box::new(BufReader::with_capacity(
                1 << 20,
                File::open(p).map_err(io(p))?,
            )),
            Data::Memory(v) => Box::new(Cursor::new(v.as_slice())),
        })
    }

    /// Calls `f` for every row with the bytes read so far; stops early if `f` returns
    /// false. Returns the bytes read.
    pub(crate) fn rows(&self, f: &mut dyn FnMut(Row, u64) -> bool) -> Result<u64> {
        match self.format {
            Format::BinanceCsv | Format::HeaderCsv => self.csv_rows(f),
            Format::FreqtradeJson => self.json_rows(f),
            Format::Parquet => self.parquet_rows(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freqtrade_names_say_the_kind() {
        assert_eq!(
            name_kind("d/XRP_USDT_USDT-1h-futures.json"),
            NamedAs::Kind(Kind::Futures)
        );
        assert_eq!(
            name_kind("XRP_USDT_USDT-8h-mark.feather"),
            NamedAs::Kind(Kind::Mark)
        );
        assert_eq!(
            name_kind("XRP_USDT_USDT-1h-funding_rate.json"),
            NamedAs::FundingRates
        );
        for unsaid in [
            "BTCUSDT-1m-2024-01.csv",
            "XRP_USDT-1h.json",
            "XRPETH-5m.csv",
            "x.zip!BTCUSDT-1h-2024-01.csv",
        ] {
            assert_eq!(name_kind(unsaid), NamedAs::Unsaid, "{unsaid}");
        }
    }

    #[test]
    fn names_give_symbol_and_timeframe() {
        let n = |s: &str| {
            let (a, b) = names(s);
            (a.map(|x| x.to_string()), b.map(|x| x.to_string()))
        };
        assert_eq!(
            n("data/BTCUSDT-1m-2024-01.csv"),
            (Some("BTCUSDT".into()), Some("1m".into()))
        );
        assert_eq!(
            n("x.zip!BTCUSDT-1h-2024-01.csv"),
            (Some("BTCUSDT".into()), Some("1h".into()))
        );
        assert_eq!(
            n("XRP_USDT_USDT-1h-futures.json"),
            (Some("XRPUSDT".into()), Some("1h".into()))
        );
        assert_eq!(
            n("XRPETH-5m.csv"),
            (Some("XRPETH".into()), Some("5m".into()))
        );
        assert_eq!(n("candles.csv"), (Some("CANDLES".into()), None));
        assert_eq!(n("my data.csv").1, None);
    }

    #[test]
    fn formats_are_detected_from_content() {
        assert_eq!(
            detect(b"1570752000000,0.1,0.2,0.1,0.1,5,1,0,0,0,0,0\n", "x").unwrap(),
            Format::BinanceCsv
        );
        assert_eq!(
            detect(b"open_time,open,high\n1,2,3", "x").unwrap(),
            Format::HeaderCsv
        );
        assert_eq!(
            detect(b"\xef\xbb\xbftime,open\n", "x").unwrap(),
            Format::HeaderCsv
        );
        assert_eq!(
            detect(b"  [[1,2,3,4,5,6]]", "x").unwrap(),
            Format::FreqtradeJson
        );
        assert_eq!(detect(b"PAR1....", "x").unwrap(), Format::Parquet);
        assert!(detect(b"   \n ", "x").is_err());
    }
}
