//! Dates as the API writes them, without a date crate: HTTP dates (`Last-Modified`) and
//! the ISO 8601 `date` of history entries.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::HeaderValue;

/// `Last-Modified` for a timestamp in milliseconds.
pub(crate) fn http_date(ms: i64) -> Option<HeaderValue> {
    let time = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    HeaderValue::from_str(&httpdate(time)).ok()
}

/// The civil date and time of `time` (UTC): year, month, day, hour, minute, second, and
/// the days since 1970-01-01.
fn civil(time: SystemTime) -> (i64, i64, i64, u64, u64, u64, u64) {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = secs / 86_400;
    let (hour, minute, second) = ((secs % 86_400) / 3600, (secs % 3600) / 60, secs % 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, hour, minute, second, days)
}

/// RFC 7231 IMF-fixdate.
fn httpdate(time: SystemTime) -> String {
    let (year, month, day, hour, minute, second, days) = civil(time);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    let month_name = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(month - 1) as usize];
    format!("{weekday}, {day:02} {month_name} {year} {hour:02}:{minute:02}:{second:02} GMT")
}

/// ISO 8601 with microseconds and the UTC offset, as Kinto's history writes `date`
/// (`2026-12-02T07:59:45.971324+00:00`).
pub(crate) fn iso8601(time: SystemTime) -> String {
    let (year, month, day, hour, minute, second, _) = civil(time);
    let micros = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_micros())
        .unwrap_or(0);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{micros:06}+00:00")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_dates() {
        let time = UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        assert_eq!(httpdate(time), "Wed, 21 Oct 2015 07:28:00 GMT");
        assert_eq!(httpdate(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 GMT");
        let precise = time + Duration::from_micros(971_324);
        assert_eq!(iso8601(precise), "2015-10-21T07:28:00.971324+00:00");
    }
}
