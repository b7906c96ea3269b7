//! `sta create PATH`: make a `.torrent` of a file or folder.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use serde_json::json;
use sta_node::create::{CreateOptions, create_from, scan};
use sta_proto::units::{format_bytes, parse_size};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// File or folder to share.
    pub path: PathBuf,
    /// Tracker announce URL; repeat for more. Each -t is its own tier (BEP 12);
    /// join URLs with commas to put them in one tier.
    #[arg(short = 't', long = "tracker", value_name = "URL")]
    pub trackers: Vec<String>,
    /// Output file [default: NAME.torrent in the current folder].
    #[arg(short, long, value_name = "FILE.torrent")]
    pub output: Option<PathBuf>,
    /// Piece length (power of two, e.g. 256KiB, 1MiB) or `auto` (1000 to 2000 pieces).
    #[arg(long, default_value = "auto", value_name = "SIZE|auto")]
    pub piece_length: String,
    /// Mark the torrent private (BEP 27): peers only from its trackers.
    #[arg(long)]
    pub private: bool,
    /// Free-text comment stored in the torrent.
    #[arg(long, value_name = "TEXT")]
    pub comment: Option<String>,
    /// Web seed URL (BEP 19 `url-list`); repeat for more.
    #[arg(long = "web-seed", value_name = "URL")]
    pub web_seeds: Vec<String>,
    /// Include hidden files and folders (names starting with a dot).
    #[arg(long)]
    pub include_hidden: bool,
    /// Leave out the creation date, so the same content always gives the same file.
    #[arg(long)]
    pub no_date: bool,
    /// Overwrite the output file if it exists.
    #[arg(short, long)]
    pub force: bool,
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let piece_length = if a.piece_length.eq_ignore_ascii_case("auto") {
        None
    } else {
        let n = parse_size(&a.piece_length)?;
        Some(u32::try_from(n).with_context(|| format!("piece length {n} is too large"))?)
    };
    let content = scan(&a.path, a.include_hidden)
        .with_context(|| format!("cannot read {}", a.path.display()))?;
    let output = a
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}.torrent", content.name)));
    if output.exists() && !a.force {
        bail!(
            "{} already exists; pass --force to overwrite it",
            output.display()
        );
    }
    for (p, why) in &content.skipped {
        eprintln!("skipped {} ({why})", p.display());
    }
    let total = content.total_length();
    let opts = CreateOptions {
        piece_length,
        include_hidden: a.include_hidden,
        trackers: a
            .trackers
            .iter()
            .map(|t| {
                t.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            })
            .collect(),
        private: a.private,
        comment: a.comment.clone(),
        web_seeds: a.web_seeds.clone(),
        created_by: Some(format!("sta/{}", env!("CARGO_PKG_VERSION"))),
        creation_date: (!a.no_date).then(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64)
        }),
        threads: 0,
    };
    let bar = (std::io::stderr().is_terminal() && !a.json).then(|| {
        let b = indicatif::ProgressBar::new(total);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "hashing {bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
            )
            .expect("static template"),
        );
        b
    });
    let started = std::time::Instant::now();
    let created = create_from(content, &opts, &|n| {
        if let Some(b) = &bar {
            b.set_position(n);
        }
    })?;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let secs = started.elapsed().as_secs_f64();
    std::fs::write(&output, &created.bytes)
        .with_context(|| format!("cannot write {}", output.display()))?;
    let m = &created.metainfo;
    let magnet = m.magnet().to_uri();
    if a.json {
        crate::output::json_line(&json!({
            "torrent": output,
            "name": m.info.name,
            "info_hash": m.info_hash,
            "magnet": magnet,
            "total_length": total,
            "files": m.info.files.len(),
            "piece_length": m.info.piece_length,
            "piece_length_auto": created.auto_piece_length,
            "pieces": m.info.num_pieces(),
            "hash_seconds": secs,
        }));
    } else {
        let auto = if created.auto_piece_length {
            " (picked automatically)"
        } else {
            ""
        };
        println!(
            "hashed {} in {} file(s): {} pieces of {}{auto}, {:.2} s ({}/s)",
            format_bytes(total),
            m.info.files.len(),
            m.info.num_pieces(),
            format_bytes(u64::from(m.info.piece_length)),
            secs,
            format_bytes((total as f64 / secs.max(1e-9)) as u64)
        );
        println!("wrote      {}", output.display());
        println!("info-hash  {}", m.info_hash);
        println!("magnet     {magnet}");
    }
    Ok(ExitCode::SUCCESS)
}

/// For `sta seed PATH`: the torrent `NAME.torrent` beside PATH, made now
/// unless one is already there (then it is reused; the seeder's check proves
/// it matches the data).
pub fn make_beside(
    path: &std::path::Path,
    trackers: &[String],
    piece_length: &str,
) -> anyhow::Result<sta_proto::metainfo::Metainfo> {
    let abs = std::path::absolute(path)?;
    let name = abs
        .file_name()
        .and_then(|n| n.to_str())
        .context("the path has no usable file name")?;
    let out = abs.with_file_name(format!("{name}.torrent"));
    if out.exists() {
        let m = crate::cmd::node::load_torrent(&out)?;
        // Seeding the old torrent while the user asked for other trackers
        // would announce where nobody looks: say so instead.
        let wanted: Vec<Vec<String>> = trackers.iter().map(|t| vec![t.clone()]).collect();
        let have: Vec<&String> = m.trackers.iter().flatten().collect();
        if !trackers.is_empty() && have != wanted.iter().flatten().collect::<Vec<_>>() {
            anyhow::bail!(
                "{} already exists and announces to {}, not to the -t given; \
                 seed it without -t, or remove it to make a new one",
                out.display(),
                if have.is_empty() {
                    "no tracker".to_string()
                } else {
                    have.iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            );
        }
        eprintln!("using {}", out.display());
        return Ok(m);
    }
    let pl = if piece_length.eq_ignore_ascii_case("auto") {
        None
    } else {
        Some(u32::try_from(parse_size(piece_length)?)?)
    };
    let opts = CreateOptions {
        piece_length: pl,
        trackers: trackers.iter().map(|t| vec![t.clone()]).collect(),
        created_by: Some(format!("sta/{}", env!("CARGO_PKG_VERSION"))),
        ..Default::default()
    };
    let created = sta_node::create::create(&abs, &opts, &|_| {})?;
    std::fs::write(&out, &created.bytes)
        .with_context(|| format!("cannot write {}", out.display()))?;
    eprintln!(
        "made {} (info-hash {})",
        out.display(),
        created.metainfo.info_hash
    );
    Ok(created.metainfo)
}
