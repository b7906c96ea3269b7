//! Watching and steering real nodes: the interactive prompt in a terminal
//! (tmux), `sta ctl` and the control API, progress lines in the log.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use sta_testkit::files::random_file;
use sta_testkit::sta::{StaEnv, ready_peer_addr, wait_status};
use sta_testkit::tools::require_tool;
use sta_testkit::wait_until;

#[path = "support/tmux.rs"]
mod tmux;
use tmux::Tmux;

const STA: &str = env!("CARGO_BIN_EXE_sta");
const T: Duration = Duration::from_secs(60);

fn ctl(api: &str, args: &[&str]) -> (bool, String) {
    sta_testkit::sta::ctl(STA, api, args)
}

/// Scrape counts (seeders, leechers) for the torrent at `t` from the tracker at `announce`.
fn scrape(announce: &str, t: &Path) -> (u32, u32) {
    let out = Command::new(STA)
        .args(["info", "--json"])
        .arg(t)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ih = sta_proto::InfoHash::from_hex(v["info_hash"].as_str().unwrap()).unwrap();
    let url = format!(
        "{}?{}",
        announce.replace("/announce", "/scrape"),
        sta_proto::tracker::http::scrape_query(&[ih])
    );
    let body = http_get(&url);
    let stats = sta_proto::tracker::http::parse_scrape(&body).unwrap();
    stats
        .first()
        .map_or((0, 0), |(_, s)| (s.complete, s.incomplete))
}

fn http_get(url: &str) -> Vec<u8> {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    sta_testkit::http::get(sta_testkit::http::addr_of(host), &format!("/{path}")).body
}

fn last_progress(screen: &str) -> f64 {
    screen
        .lines()
        .rev()
        .filter_map(|l| l.trim().strip_prefix("progress"))
        .filter_map(|r| r.trim().split('%').next()?.trim().parse().ok())
        .next()
        .expect("a progress line")
}

#[test]
fn prompt_drives_a_real_download() {
    if !require_tool("tmux") {
        return;
    }
    let mut env = StaEnv::new(STA);
    let (_tracker, announce, _) = env.tracker(&[]).unwrap();
    let src = env.path("seed/p.bin");
    random_file(&src, 6 << 20, 21).unwrap();
    let t = env.create(&src, &announce, "64KiB").unwrap();
    let (mut seeder, ready) = env
        .node(
            "seeder",
            "node",
            &[
                t.to_str().unwrap(),
                "-o",
                env.path("seed").to_str().unwrap(),
                "--role",
                "seeder",
                "--max-upload-rate",
                "1MiB",
            ],
        )
        .unwrap();
    wait_status(&mut seeder, "seeding", T, |t| t["state"] == "seeding").unwrap();
    let seeder_addr = ready_peer_addr(&ready);
    let exit_file = env.path("exit-code");
    let cmd = format!(
        "{STA} get {} -o {} -p 0 --bind 127.0.0.40 --state-dir {} --api 127.0.0.1:0 2>{}; echo $? > {}",
        t.display(),
        env.path("leech").display(),
        env.path("state-prompt").display(),
        env.path("prompt.stderr").display(),
        exit_file.display()
    );
    let tmux = Tmux::start(&format!("sta-test-{}", std::process::id()), &cmd);
    wait_until("the prompt", T, || tmux.screen().contains("sta[1]>"))
        .unwrap_or_else(|e| panic!("{e}\n{}", tmux.screen()));
    // The download is rate-limited to about 6 s: progress must grow between two status commands.
    let mut first = 0.0;
    wait_until("some progress", T, || {
        first = last_progress(&tmux.ask("status", "progress"));
        first > 0.0
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e}\n{}",
            std::fs::read_to_string(env.path("prompt.stderr")).unwrap_or_default()
        )
    });
    let mut second = first;
    wait_until("more progress", T, || {
        second = last_progress(&tmux.ask("status", "progress"));
        second > first
    })
    .unwrap();
    let peers = tmux.ask("peers", "by download rate");
    assert!(
        peers.contains(&seeder_addr.to_string()),
        "peers lists the seeder:\n{peers}"
    );
    let pieces = tmux.ask("pieces", "pieces verified");
    let verified_line = pieces
        .lines()
        .rev()
        .find(|l| l.contains("pieces verified"))
        .unwrap()
        .to_string();
    let n: u32 = verified_line
        .split(':')
        .nth(1)
        .unwrap()
        .trim()
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let total: u32 = verified_line
        .split('/')
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(total, 96);
    assert!(n > 0 && n <= total, "{verified_line}");
    // The map under it agrees with the count: one character per piece here.
    let map: String = pieces
        .lines()
        .skip_while(|l| !l.contains("pieces verified"))
        .skip(1)
        .take_while(|l| !l.is_empty() && l.chars().all(|c| "#+:.".contains(c)))
        .collect();
    assert_eq!(map.len(), 96, "{pieces}");
    assert_eq!(map.matches('#').count() as u32, n, "{pieces}");
    // The other commands, as a person types them.
    let list = tmux.ask("torrents", "p.bin");
    assert!(
        list.lines()
            .any(|l| l.starts_with('*') && l.contains("p.bin")),
        "{list}"
    );
    let speed = tmux.ask("speed", "one mark per second");
    assert!(speed.contains("average"), "{speed}");
    let files = tmux.ask("files", "p.bin");
    assert!(files.contains("6.00 MiB"), "{files}");
    let trackers = tmux.ask("trackers", "announces");
    assert!(trackers.contains(&announce), "{trackers}");
    let piece = tmux.ask("pieces 5", "piece 5:");
    assert!(
        piece.contains("blocks") && piece.contains("p.bin"),
        "{piece}"
    );
    let selected = tmux.ask("select 1", "selected torrent 1");
    assert!(selected.contains("p.bin"), "{selected}");
    let help = tmux.ask("help", "limit up|down RATE");
    assert!(help.contains("quit"), "{help}");
    let unknown = tmux.ask("bogus", "unknown command");
    assert!(unknown.contains("type help"));
    let (seeds_before, leechers_before) = scrape(&announce, &t);
    assert_eq!(
        seeds_before + leechers_before,
        2,
        "tracker sees seeder and leecher"
    );
    tmux.send("quit");
    wait_until("exit code", T, || exit_file.exists()).unwrap();
    assert_eq!(std::fs::read_to_string(&exit_file).unwrap().trim(), "0");
    // The tracker saw `stopped`: only the seeder is left.
    wait_until("tracker to drop the leecher", T, || {
        scrape(&announce, &t) == (1, 0)
    })
    .unwrap();
}

#[test]
fn ctl_and_api_steer_a_running_node() {
    let mut env = StaEnv::new(STA);
    let (_tracker, announce, _) = env.tracker(&[]).unwrap();
    // 40 pieces: at the limit set below, about 10 s of upload.
    let src = env.path("seed/c.bin");
    random_file(&src, 40 << 16, 22).unwrap();
    let t = env.create(&src, &announce, "64KiB").unwrap();
    let (mut seeder, ready) = env.seeder("seeder", &t, &env.path("seed"), &[]).unwrap();
    let api = ready["api"].as_str().unwrap().to_string();
    let (ok, out) = ctl(&api, &["status"]);
    assert!(
        ok && out.contains("seeding") && out.contains("c.bin"),
        "{out}"
    );
    let (ok, out) = ctl(&api, &["--json", "peers"]);
    let v: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert!(ok && v["kind"] == "peers" && v["peers"].is_array());
    let (ok, out) = ctl(&api, &["pieces"]);
    assert!(ok && out.contains("40/40 pieces verified"), "{out}");
    let (ok, out) = ctl(&api, &["pause"]);
    assert!(ok && out.contains("paused"), "{out}");
    wait_status(&mut seeder, "paused", T, |t| t["state"] == "paused").unwrap();
    let (ok, _) = ctl(&api, &["resume"]);
    assert!(ok);
    wait_status(&mut seeder, "seeding again", T, |t| t["state"] == "seeding").unwrap();
    let (ok, out) = ctl(&api, &["limit", "up", "1MiB"]);
    assert!(ok && out.contains("node upload limit: 1.00 MiB/s"), "{out}");
    // A torrent's limit shows in its snapshot, and its upload keeps to it.
    let limit: u64 = 256 << 10;
    let (ok, out) = ctl(&api, &["limit", "up", "256KiB", "#1"]);
    assert!(
        ok && out.contains("torrent 1 upload limit: 256 KiB/s"),
        "{out}"
    );
    wait_status(&mut seeder, "the limit in the snapshot", T, |t| {
        t["max_upload_rate"] == limit
    })
    .unwrap();
    let (_leecher, _) = env
        .node(
            "leecher",
            "get",
            &[
                t.to_str().unwrap(),
                "-o",
                env.path("leech").to_str().unwrap(),
            ],
        )
        .unwrap();
    let rate = upload_rate_over(&mut seeder, Duration::from_secs(5));
    eprintln!("upload {rate:.0} B/s under a limit of {limit} B/s");
    assert!(
        rate <= 1.1 * limit as f64,
        "{rate:.0} B/s is over 1.1 × {limit}"
    );
    assert!(
        rate >= 0.5 * limit as f64,
        "{rate:.0} B/s is under half of {limit}"
    );
    let (ok, out) = ctl(&api, &["nonsense"]);
    assert!(!ok && out.contains("unknown command"), "{out}");
    // The plain JSON API.
    let body = http_get(&format!("http://{api}/api/status"));
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["torrents"][0]["state"], "seeding");
    let (ok, _) = ctl(&api, &["quit"]);
    assert!(ok);
    assert!(seeder.wait_exit(T).unwrap().success());
}

/// The first torrent's upload rate over at least `window`, from a node's
/// status lines: counters change once per tick, so the window runs from one
/// change to a later one, timed by the node's own `elapsed`; the first change
/// (the start of the transfer, partly a burst) only marks the start.
fn upload_rate_over(p: &mut sta_testkit::Proc, window: Duration) -> f64 {
    let mut prev = 0u64;
    let mut first: Option<(f64, u64)> = None;
    loop {
        let v = p
            .wait_json("status line", T, |v| v["event"] == "status")
            .unwrap();
        let (at, up) = (
            v["elapsed"].as_f64().unwrap(),
            v["torrents"][0]["uploaded"].as_u64().unwrap(),
        );
        if up != prev {
            match first {
                None if prev > 0 => first = Some((at, up)),
                Some((t0, u0)) if at - t0 >= window.as_secs_f64() => {
                    return (up - u0) as f64 / (at - t0);
                }
                _ => {}
            }
            prev = up;
        }
        assert!(
            v["torrents"][0]["peers_connected"].as_u64() != Some(0) || first.is_none(),
            "the leecher left before a {window:?} window was measured"
        );
    }
}

/// stdout not a terminal: JSON lines only there, and a concise line for
/// people in the log (stderr) every few seconds, which -q turns off.
#[test]
fn without_a_terminal_the_log_gets_concise_progress_lines() {
    let mut env = StaEnv::new(STA);
    let src = env.path("seed/quiet.bin");
    random_file(&src, 100_000, 24).unwrap();
    let t = env.create(&src, "", "16KiB").unwrap();
    let seed = env.path("seed").display().to_string();
    let args = [
        t.to_str().unwrap(),
        "-o",
        &seed,
        "--role",
        "seeder",
        "--no-api",
    ];
    let (mut talkative, _) = env.node("talkative", "node", &args).unwrap();
    let mut quiet_args = args.to_vec();
    quiet_args.push("-q");
    let (mut quiet, _) = env.node("quiet", "node", &quiet_args).unwrap();
    for p in [&mut talkative, &mut quiet] {
        // The concise line of a tick is logged before its JSON line.
        wait_status(p, "seeding", T, |t| t["state"] == "seeding").unwrap();
        let out: Vec<String> = p.drain();
        assert!(
            out.iter().all(|l| serde_json::from_str::<Value>(l).is_ok()),
            "stdout carries JSON only: {out:?}"
        );
    }
    let log = std::fs::read_to_string(&talkative.stderr_path).unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains("sta::progress") && l.contains("[100.0%] quiet.bin  seeding")),
        "{log}"
    );
    let log = std::fs::read_to_string(&quiet.stderr_path).unwrap();
    assert!(!log.contains("sta::progress"), "-q: {log}");
}
