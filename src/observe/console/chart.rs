//! The chart of requests and refusals per ten minutes over 24 hours, as
//! inline SVG drawn here (maud), so the page needs no script and no file.
//! Each bar carries its count (`data-count`) and its slot's start
//! (`data-slot`, Unix seconds) for those who read the page by program.

use maud::{Markup, html};

use super::rings::{BUCKET_SECS, Bucket};

const BAR: i64 = 5;
const HEIGHT: u64 = 120;
const TOP: u64 = 10;

/// The bar height for `n` out of `max`.
fn height(n: u64, max: u64) -> u64 {
    if max == 0 {
        0
    } else {
        (n * HEIGHT).div_ceil(max)
    }
}

/// The chart for `buckets` (oldest first).
pub fn svg(buckets: &[Bucket]) -> Markup {
    let max = buckets
        .iter()
        .map(|b| b.requests.max(b.refusals))
        .max()
        .unwrap_or(0);
    let width = BAR * buckets.len() as i64;
    let base = TOP + HEIGHT;
    html! {
        svg #chart xmlns="http://www.w3.org/2000/svg" width=(width + 60) height=(base + 30)
            viewBox={ "0 0 " (width + 60) " " (base + 30) } role="img"
            aria-label="要求と拒否 / requests and refusals" {
            rect x="0" y=(TOP) width=(width) height=(HEIGHT) fill="#f7f7f7" {}
            @for (i, b) in buckets.iter().enumerate() {
                @let x = i as i64 * BAR;
                @if b.requests > 0 {
                    @let h = height(b.requests, max);
                    rect.requests x=(x) y=(base - h) width=(BAR - 1) height=(h) fill="#48c"
                        data-count=(b.requests) data-slot=(b.slot * BUCKET_SECS) {}
                }
                @if b.refusals > 0 {
                    @let h = height(b.refusals, max);
                    rect.refusals x=(x + 1) y=(base - h) width=(BAR - 3) height=(h) fill="#c33"
                        data-count=(b.refusals) data-slot=(b.slot * BUCKET_SECS) {}
                }
            }
            text x=(width + 4) y=(TOP + 10) font-size="10" { "max " (max) }
            text x="0" y=(base + 14) font-size="10" { "-24h" }
            text x=(width - 20) y=(base + 14) font-size="10" { "now" }
            rect x="0" y=(base + 18) width="8" height="8" fill="#48c" {}
            text x="12" y=(base + 26) font-size="10" { "要求 / requests" }
            rect x="110" y=(base + 18) width="8" height="8" fill="#c33" {}
            text x="122" y=(base + 26) font-size="10" { "拒否 / refusals" }
        }
    }
}
