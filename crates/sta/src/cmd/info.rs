//! `sta info FILE.torrent|MAGNET`: show what a torrent or magnet link holds.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use serde_json::json;
use sta_proto::magnet::Magnet;
use sta_proto::metainfo::{self, Metainfo};
use sta_proto::units::format_bytes;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A .torrent file or a magnet: link.
    pub source: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    if a.source.to_ascii_lowercase().starts_with("magnet:") {
        let m = Magnet::parse(&a.source)?;
        if a.json {
            crate::output::json_line(&json!({
                "info_hash": m.info_hash,
                "name": m.display_name,
                "trackers": m.trackers,
                "peers": m.peers,
                "magnet": m.to_uri(),
            }));
        } else {
            println!("info-hash  {}", m.info_hash);
            println!(
                "name       {}",
                m.display_name.as_deref().unwrap_or("(not given)")
            );
            for t in &m.trackers {
                println!("tracker    {t}");
            }
            for p in &m.peers {
                println!("peer       {p}");
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let path = PathBuf::from(&a.source);
    let bytes = read_torrent_file(&path)?;
    let m = metainfo::parse(&bytes)
        .with_context(|| format!("{} is not a usable torrent", path.display()))?;
    if a.json {
        crate::output::json_line(&to_json(&m));
    } else {
        print_human(&m);
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads a .torrent file of at most [`metainfo::MAX_TORRENT_FILE`] bytes,
/// without loading a larger one (see [`sta_node::source::read_torrent_bytes`]).
pub fn read_torrent_file(path: &Path) -> anyhow::Result<Vec<u8>> {
    sta_node::source::read_torrent_bytes(path)
        .with_context(|| format!("cannot read {}", path.display()))
}

/// How `creation date` is shown: an RFC 3339 time when it is one, otherwise
/// the raw number with a note (a hostile or broken torrent may hold any
/// integer, and the formatter only covers 1970 to 9999).
pub fn creation_date_text(secs: i64) -> String {
    // 9999-12-31T23:59:59Z, the last second RFC 3339 can write.
    const LAST: u64 = 253_402_300_799;
    match u64::try_from(secs) {
        Ok(s) if s <= LAST => {
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(s);
            humantime::format_rfc3339_seconds(t).to_string()
        }
        _ => format!("{secs} (seconds since 1970; not a date between 1970 and 9999)"),
    }
}

pub fn to_json(m: &Metainfo) -> serde_json::Value {
    let i = &m.info;
    json!({
        "name": i.name,
        "info_hash": m.info_hash,
        "total_length": i.data_length(),
        "piece_length": i.piece_length,
        "pieces": i.num_pieces(),
        "private": i.private,
        "multi_file": i.multi_file,
        "hybrid": i.hybrid,
        "files": i.data_files().map(|f| json!({"path": f.display_path(), "length": f.length})).collect::<Vec<_>>(),
        "trackers": m.trackers,
        "web_seeds": m.web_seeds,
        "creation_date": m.creation_date,
        "created_by": m.created_by,
        "comment": m.comment,
        "magnet": m.magnet().to_uri(),
    })
}

fn print_human(m: &Metainfo) {
    let i = &m.info;
    println!("name        {}", i.name);
    println!("info-hash   {}", m.info_hash);
    println!(
        "size        {} ({} bytes)",
        format_bytes(i.data_length()),
        i.data_length()
    );
    println!(
        "pieces      {} x {}",
        i.num_pieces(),
        format_bytes(u64::from(i.piece_length))
    );
    println!("private     {}", if i.private { "yes" } else { "no" });
    if i.hybrid {
        println!("format      hybrid v1+v2 (read through its v1 fields)");
    }
    if let Some(d) = m.creation_date {
        println!("created     {}", creation_date_text(d));
    }
    if let Some(by) = &m.created_by {
        println!("created by  {by}");
    }
    if let Some(c) = &m.comment {
        println!("comment     {c}");
    }
    if m.trackers.is_empty() {
        println!("trackers    (none)");
    }
    for (n, tier) in m.trackers.iter().enumerate() {
        println!("tier {:<6} {}", n + 1, tier.join(" "));
    }
    for w in &m.web_seeds {
        println!("web seed    {w}");
    }
    let files: Vec<_> = i.data_files().collect();
    println!("files       {}", files.len());
    for f in files {
        println!("  {:>10}  {}", format_bytes(f.length), f.display_path());
    }
    println!("magnet      {}", m.magnet().to_uri());
}
