//! A frame from the upstream, read by the exchange's [`StreamApi`](crate::exchange::StreamApi)
//! and applied to its series: checked (topic, grid, OHLC rules, order), the forming
//! candle kept, closed ones queued for the writer, the raw event fanned out to served
//! streams, and the backfill started after a (re)subscription.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;

use super::backfill::backfill;
use super::state::{lock, Shared, State};
use crate::exchange::Frame;
use crate::live::edge::stream_fresh;
use crate::store::CandleStore;

/// Handles one text frame; anything that is not a valid event of a subscribed series is
/// counted and dropped.
pub(super) fn on_text<S: CandleStore + Clone + Send + Sync + 'static>(
    sh: &Arc<Shared<S>>,
    idx: usize,
    text: &str,
) {
    let bad = |why: &str| {
        let n = sh.counters.bad_frames.fetch_add(1, Ordering::Relaxed) + 1;
        // The first few are logged; a flood is counted.
        if n <= 5 {
            eprintln!(
                "candlecache: upstream stream frame ignored ({why}): {}",
                text.chars().take(200).collect::<String>()
            );
        }
    };
    let (name, event, klines) = match sh.api.read(text) {
        Frame::Klines { topic, raw, klines } => (topic, raw, klines),
        Frame::Ack => return,
        Frame::Bad(why) => return bad(&why),
        Frame::Unexpected => {
            sh.counters.unexpected.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    let now = (sh.now)();
    let mut series = lock(&sh.series);
    let Some(s) = series.get_mut(&name).filter(|s| s.conn == idx) else {
        drop(series);
        sh.counters.unexpected.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let mut accepted = None;
    for kline in &klines {
        let candle = match sh.api.candle(kline, s.tf) {
            Ok(c) => c,
            Err(why) => {
                bad(&why);
                continue;
            }
        };
        let closed = kline.closed;
        let newest = s
            .forming
            .as_ref()
            .map(|f| f.open_time)
            .max(s.last_closed)
            .unwrap_or(i64::MIN);
        if candle.open_time < newest || (closed && Some(candle.open_time) == s.last_closed) {
            sh.counters.out_of_order.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        if s.last_event.is_some() && !stream_fresh(s.last_event, now, sh.config.stale_ms) {
            // Events stopped for a while (the edge was served over REST meanwhile): what
            // came before is not known to be continuous, so backfill again.
            s.state = State::Subscribing;
            s.last_closed = None;
        }
        sh.counters.events.fetch_add(1, Ordering::Relaxed);
        s.events += 1;
        s.last_event = Some(now);
        // Everything opening before this is closed upstream.
        let closed_end = if closed {
            s.tf.next(candle.open_time)
        } else {
            candle.open_time
        };
        if closed {
            // Consecutive closes on one connection prove the slots between them empty.
            let from = s.last_closed.map_or(candle.open_time, |p| s.tf.next(p));
            let covered = (from, s.tf.next(candle.open_time));
            s.last_closed = Some(candle.open_time);
            if s.forming
                .as_ref()
                .is_some_and(|f| f.open_time <= candle.open_time)
            {
                s.forming = None;
            }
            s.unstored.push_back(candle.clone());
            let _ = sh.writer.send((name.clone(), candle, covered));
        } else {
            s.forming = Some(candle);
        }
        accepted = Some(closed_end);
    }
    let Some(closed_end) = accepted else { return };
    let raw = Bytes::copy_from_slice(event.as_bytes());
    s.last_raw = Some(raw.clone());
    // No receiver is not an error: the event is kept as `last_raw` for the next.
    let _ = s.feed.send(raw);
    if s.state == State::Subscribing {
        s.state = State::Backfilling;
        let (symbol, tf) = (s.symbol.clone(), s.tf);
        drop(series);
        tokio::spawn(backfill(
            Arc::downgrade(sh),
            name,
            symbol,
            tf,
            idx,
            closed_end,
        ));
    } else {
        drop(series);
    }
    let mut rate = lock(&sh.rate);
    let sec = now / 1000;
    match rate.back_mut() {
        Some((s, n)) if *s == sec => *n += 1,
        _ => rate.push_back((sec, 1)),
    }
    while rate.len() > 12 {
        rate.pop_front();
    }
}
