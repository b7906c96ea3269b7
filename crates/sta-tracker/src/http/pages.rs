//! `GET /` (a small HTML page of the tracker's state), `GET /stats.json`
//! (counters, gauges and the busiest torrents) and `GET /metrics`
//! (Prometheus text format).

use std::fmt::Write;
use std::time::Instant;

use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};

use super::{AppState, escape};
use sta_proto::units::format_bytes;

/// Torrents listed on the pages.
const ROWS_HTML: usize = 20;
const ROWS_JSON: usize = 100;

pub async fn index(State(s): State<AppState>) -> Html<String> {
    let now = Instant::now();
    let g = s.core.gauges(now);
    let rate = s.core.stats.announce_rate();
    let mut o = String::with_capacity(4096);
    let _ = write!(
        o,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>sta tracker</title>\
         <meta http-equiv=\"refresh\" content=\"5\">\
         <style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:2px 10px;text-align:right}}\
         td.h{{font-family:monospace;text-align:left}}</style></head><body>\
         <h1>sta tracker</h1><table>\
         <tr><th>torrents</th><td>{}</td></tr><tr><th>seeders</th><td>{}</td></tr>\
         <tr><th>leechers</th><td>{}</td></tr><tr><th>completed</th><td>{}</td></tr>\
         <tr><th>announces per second</th><td>{:.1}</td></tr>\
         <tr><th>published torrents</th><td>{}</td></tr>\
         <tr><th>memory</th><td>{}</td></tr><tr><th>up</th><td>{} s</td></tr></table>",
        g.torrents,
        g.seeders,
        g.leechers,
        g.completed,
        rate,
        g.catalog,
        g.rss_bytes.map(format_bytes).unwrap_or_else(|| "?".into()),
        g.uptime_secs,
    );
    let top = s.core.top(ROWS_HTML);
    if !top.is_empty() {
        o.push_str(
            "<h2>Busiest torrents</h2><table><tr><th>info-hash</th><th>name</th>\
             <th>seeders</th><th>leechers</th><th>completed</th></tr>",
        );
        for r in top {
            let name = s
                .core
                .catalog
                .get(&r.info_hash)
                .map(|e| escape(&e.name))
                .unwrap_or_default();
            let _ = write!(
                o,
                "<tr><td class=\"h\">{}</td><td class=\"h\">{name}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                r.info_hash.to_hex(),
                r.seeders,
                r.leechers,
                r.completed
            );
        }
        o.push_str("</table>");
    }
    o.push_str(
        "<p><a href=\"/torrents\">catalog</a> · <a href=\"/stats.json\">stats.json</a> · \
         <a href=\"/metrics\">metrics</a></p></body></html>",
    );
    Html(o)
}

pub async fn stats_json(State(s): State<AppState>) -> Response {
    let g = s.core.gauges(Instant::now());
    let mut v = s.core.stats.to_json(&g);
    let rows: Vec<serde_json::Value> = s
        .core
        .top(ROWS_JSON)
        .into_iter()
        .map(|r| {
            serde_json::json!({
                "info_hash": r.info_hash.to_hex(),
                "name": s.core.catalog.get(&r.info_hash).map(|e| e.name.clone()),
                "seeders": r.seeders,
                "leechers": r.leechers,
                "completed": r.completed,
            })
        })
        .collect();
    v["interval"] = s.core.interval.into();
    v["torrents_top"] = rows.into();
    axum::Json(v).into_response()
}

pub async fn metrics(State(s): State<AppState>) -> Response {
    let g = s.core.gauges(Instant::now());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.core.stats.to_prometheus(&g),
    )
        .into_response()
}
