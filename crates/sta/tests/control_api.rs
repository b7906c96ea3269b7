//! The control API and `sta ctl` against running nodes: every command of the
//! shared language on a node with several torrents, and the refusals that
//! keep web pages and other hosts out.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use sta_testkit::files::random_file;
use sta_testkit::http::{addr_of, raw_request};
use sta_testkit::proc::Proc;
use sta_testkit::sta::StaEnv;
use sta_testkit::wait_until;

const STA: &str = env!("CARGO_BIN_EXE_sta");
const T: Duration = Duration::from_secs(60);

fn ctl(api: &str, args: &[&str]) -> (bool, String) {
    sta_testkit::sta::ctl(STA, api, args)
}

fn ctl_ok(api: &str, args: &[&str]) -> String {
    let (ok, out) = ctl(api, args);
    assert!(ok, "sta ctl {args:?} failed: {out}");
    out
}

fn ctl_json(api: &str, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend(args);
    let out = ctl_ok(api, &all);
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// Waits until every torrent on a node's status lines is seeding.
fn wait_all_seeding(p: &mut Proc, n: usize) {
    p.wait_json("every torrent seeding", T, |v| {
        v["event"] == "status"
            && v["torrents"]
                .as_array()
                .is_some_and(|t| t.len() == n && t.iter().all(|t| t["state"] == "seeding"))
    })
    .unwrap();
}

/// Whether the `torrents` table marks `name`'s line with `*` (selected).
fn marked(list: &str, name: &str) -> bool {
    list.lines().any(|l| l.starts_with('*') && l.contains(name))
}

fn seeder_of(env: &mut StaEnv, torrents: &[&Path], extra: &[&str]) -> (Proc, String) {
    let seed = env.path("seed").display().to_string();
    let mut args: Vec<&str> = torrents.iter().map(|t| t.to_str().unwrap()).collect();
    args.extend(["-o", &seed, "--role", "seeder"]);
    args.extend(extra);
    let (mut p, ready) = env.node("seeder", "node", &args).unwrap();
    wait_all_seeding(&mut p, torrents.len());
    (p, ready["api"].as_str().unwrap().to_string())
}

#[test]
fn every_command_works_through_ctl_on_a_node_with_two_torrents() {
    let mut env = StaEnv::new(STA);
    let (_tracker, announce, _) = env.tracker(&[]).unwrap();
    let mut torrents = Vec::new();
    for (name, size) in [("a.bin", 1 << 20), ("b.bin", 300_000), ("c.bin", 100_000)] {
        let src = env.path(&format!("seed/{name}"));
        random_file(&src, size, size).unwrap();
        torrents.push(env.create(&src, &announce, "32KiB").unwrap());
    }
    let (_seeder, api) = seeder_of(&mut env, &[&torrents[0], &torrents[1]], &[]);

    let list = ctl_ok(&api, &["torrents"]);
    assert!(list.contains("a.bin") && list.contains("b.bin"), "{list}");
    assert!(marked(&list, "a.bin"), "torrent 1 is the default: {list}");

    // Each ctl call stands alone: --torrent (or #N) names the torrent...
    let out = ctl_ok(&api, &["--torrent", "2", "status"]);
    assert!(
        out.contains("torrent 2: b.bin") && out.contains("seeding"),
        "{out}"
    );
    let out = ctl_ok(&api, &["status", "#2"]);
    assert!(out.contains("torrent 2: b.bin"), "{out}");
    let list = ctl_ok(&api, &["--torrent", "2", "torrents"]);
    assert!(marked(&list, "b.bin"), "{list}");
    // ...and `select`, which could not last beyond the call, says so.
    let (ok, out) = ctl(&api, &["select", "2"]);
    assert!(!ok && out.contains("--torrent 2"), "{out}");
    let (ok, out) = ctl(&api, &["--torrent", "3", "status"]);
    assert!(!ok && out.contains("no torrent 3"), "{out}");

    let out = ctl_ok(&api, &["--torrent", "2", "files"]);
    assert!(out.contains("b.bin") && out.contains("100.0%"), "{out}");
    wait_until("both torrents to announce", T, || {
        (1..=2).all(|n| {
            let v = ctl_json(&api, &["--torrent", &n.to_string(), "trackers"]);
            v["trackers"][0]["announces"].as_u64().unwrap_or(0) >= 1
        })
    })
    .unwrap();
    let out = ctl_ok(&api, &["trackers"]);
    assert!(out.contains(&announce), "{out}");
    let v = ctl_json(&api, &["trackers", "#2"]);
    assert_eq!(v["kind"], "trackers");
    assert_eq!(v["torrent"], 2);
    assert_eq!(v["trackers"][0]["url"], announce.as_str());
    let out = ctl_ok(&api, &["--torrent", "2", "speed"]);
    assert!(
        out.contains("torrent 2: b.bin") && out.contains("average"),
        "{out}"
    );
    let out = ctl_ok(&api, &["speeds"]);
    assert!(out.contains("torrent 1: a.bin"), "{out}");
    let out = ctl_ok(&api, &["--torrent", "2", "pieces"]);
    // 300 000 bytes in 32 KiB pieces: 10 pieces, all verified.
    assert!(out.contains("torrent 2: 10/10 pieces verified"), "{out}");
    let out = ctl_ok(&api, &["--torrent", "2", "pieces", "9"]);
    assert!(out.contains("torrent 2, piece 9:"), "{out}");
    assert!(out.contains("b.bin"), "the piece's file is named: {out}");
    let v = ctl_json(&api, &["pieces", "9", "#2"]);
    assert_eq!(v["detail"]["index"], 9);
    // The last piece is shorter: 300 000 - 9 × 32 768.
    assert_eq!(v["detail"]["length"], 300_000 - 9 * 32_768);
    let (ok, out) = ctl(&api, &["pieces", "10", "#2"]);
    assert!(!ok && out.contains("pieces 0 to 9"), "{out}");
    let v = ctl_json(&api, &["peers", "up"]);
    assert_eq!(v["sort"], "up");

    // add and remove a third torrent.
    let c = torrents[2].display().to_string();
    let seed = env.path("seed").display().to_string();
    let out = ctl_ok(&api, &["add", &c, "-o", &seed]);
    assert!(out.contains("added torrent 3: c.bin"), "{out}");
    wait_until("torrent 3 to check its data and seed", T, || {
        ctl_json(&api, &["--torrent", "3", "status"])["snapshot"]["state"] == "seeding"
    })
    .unwrap();
    let list = ctl_ok(&api, &["torrents"]);
    assert!(list.contains("c.bin"), "{list}");
    let out = ctl_ok(&api, &["remove", "3"]);
    assert!(out.contains("removed torrent 3: c.bin"), "{out}");
    wait_until("torrent 3 to go", T, || {
        !ctl_ok(&api, &["torrents"]).contains("c.bin")
    })
    .unwrap();
    let (ok, out) = ctl(&api, &["remove", "3"]);
    assert!(!ok && out.contains("no torrent 3"), "{out}");
    let out = ctl_ok(&api, &["help"]);
    assert!(out.contains("limit up|down RATE"), "{out}");
}

fn status_of(addr: std::net::SocketAddr, head: &str) -> u16 {
    raw_request(addr, head, b"").unwrap().status
}

#[test]
fn api_refuses_rebound_hosts_and_foreign_origins_and_ctl_still_works() {
    let mut env = StaEnv::new(STA);
    let (_tracker, announce, _) = env.tracker(&[]).unwrap();
    let src = env.path("seed/o.bin");
    random_file(&src, 100_000, 41).unwrap();
    let t = env.create(&src, &announce, "32KiB").unwrap();
    let (mut seeder, api) = seeder_of(&mut env, &[&t], &["--api", "127.0.0.1:0"]);
    let addr = addr_of(&api);
    let port = addr.port();

    // Our own Host (any loopback literal or localhost): served.
    for host in [api.clone(), format!("localhost:{port}")] {
        assert_eq!(
            status_of(addr, &format!("GET /api/status HTTP/1.1\r\nHost: {host}")),
            200
        );
    }
    // DNS rebinding: a page's own name resolved to 127.0.0.1.
    let evil_host = format!("Host: evil.example:{port}");
    assert_eq!(
        status_of(addr, &format!("GET /api/status HTTP/1.1\r\n{evil_host}")),
        403
    );
    assert_eq!(
        status_of(addr, &format!("POST /api/quit HTTP/1.1\r\n{evil_host}")),
        403
    );
    assert_eq!(
        status_of(addr, "GET /api/status HTTP/1.0"),
        403,
        "no Host at all"
    );
    // A cross-site form post from a page elsewhere: the browser adds its Origin.
    let r = raw_request(
        addr,
        &format!("POST /api/quit HTTP/1.1\r\nHost: {api}\r\nOrigin: http://evil.example"),
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("other origins"), "{}", r.text());
    let r = raw_request(
        addr,
        &format!(
            "POST /api/command HTTP/1.1\r\nHost: {api}\r\nOrigin: null\r\nContent-Type: application/json"
        ),
        br#"{"line":"pause"}"#,
    )
    .unwrap();
    assert_eq!(r.status, 403, "{}", r.text());
    // The API's own origin is fine.
    let own = format!("GET /api/status HTTP/1.1\r\nHost: {api}\r\nOrigin: http://{api}");
    assert_eq!(status_of(addr, &own), 200);

    // Nothing of that reached the node: still seeding, ctl works, quit works.
    let out = ctl_ok(&api, &["status"]);
    assert!(out.contains("seeding"), "{out}");
    ctl_ok(&api, &["quit"]);
    assert!(seeder.wait_exit(T).unwrap().success());
}

#[test]
fn a_token_lets_other_names_in_and_off_loopback_needs_one() {
    let mut env = StaEnv::new(STA);
    let (_tracker, announce, _) = env.tracker(&[]).unwrap();
    let src = env.path("seed/k.bin");
    random_file(&src, 100_000, 42).unwrap();
    let t = env.create(&src, &announce, "32KiB").unwrap();
    let (_seeder, api) = seeder_of(&mut env, &[&t], &["--api-token", "s3cret"]);
    let addr = addr_of(&api);
    let named = format!("GET /api/status HTTP/1.1\r\nHost: node.lan:{}", addr.port());
    assert_eq!(status_of(addr, &named), 403);
    let with_token = format!("{named}\r\nAuthorization: Bearer s3cret");
    assert_eq!(status_of(addr, &with_token), 200);
    let wrong = format!("{named}\r\nAuthorization: Bearer guess");
    assert_eq!(status_of(addr, &wrong), 403);
    let out = ctl_ok(&api, &["--token", "s3cret", "status"]);
    assert!(out.contains("seeding"), "{out}");

    // An API that other hosts could reach needs a token: refused before
    // anything is bound (192.0.2.1 is TEST-NET, never this machine's).
    let out = Command::new(STA)
        .args([
            "node",
            "--json",
            "-p",
            "0",
            "--bind",
            "127.0.0.1",
            "--api",
            "192.0.2.1:0",
        ])
        .arg("--state-dir")
        .arg(env.path("state-open"))
        .arg(&t)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("--api-token"), "{err}");
    assert!(out.stdout.is_empty(), "no ready line: nothing was started");
    // With a token the check passes (and binding the absent address fails).
    let out = Command::new(STA)
        .args([
            "node",
            "--json",
            "-p",
            "0",
            "--bind",
            "127.0.0.1",
            "--api",
            "192.0.2.1:0",
        ])
        .args(["--api-token", "s3cret", "--state-dir"])
        .arg(env.path("state-open"))
        .arg(&t)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("--api-token"), "{err}");
    assert!(
        err.contains("cannot start the control API on 192.0.2.1"),
        "{err}"
    );
}

/// Two nodes with one state folder: the last one started owns `api.addr`,
/// and the other one exiting leaves it alone.
#[test]
fn a_node_that_exits_removes_api_addr_only_if_it_is_its_own() {
    let mut env = StaEnv::new(STA);
    let (_tracker, announce, _) = env.tracker(&[]).unwrap();
    let state = env.path("shared-state");
    let file = state.join("api.addr");
    let mut nodes = Vec::new();
    for (i, name) in ["first.bin", "second.bin"].iter().enumerate() {
        let src = env.path(&format!("seed/{name}"));
        random_file(&src, 100_000, 50 + i as u64).unwrap();
        let t = env.create(&src, &announce, "32KiB").unwrap();
        let ip = env.next_ip();
        let args = [
            "node",
            "--json",
            "-p",
            "0",
            "--bind",
            &ip,
            "--api",
            "127.0.0.1:0",
            "--role",
            "seeder",
            "-o",
        ];
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        all.push(env.path("seed").display().to_string());
        all.extend(["--state-dir".into(), state.display().to_string()]);
        all.push(t.display().to_string());
        let mut p = Proc::spawn(&format!("node{i}"), STA, &all, &env.logs()).unwrap();
        let ready = p.wait_ready(T).unwrap();
        let api = ready["api"].as_str().unwrap().to_string();
        assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), api);
        nodes.push((p, api));
    }
    let (mut first, first_api) = nodes.remove(0);
    let (mut second, second_api) = nodes.remove(0);
    assert_ne!(first_api, second_api);
    ctl_ok(&first_api, &["quit"]);
    assert!(first.wait_exit(T).unwrap().success());
    assert_eq!(
        std::fs::read_to_string(&file).unwrap().trim(),
        second_api,
        "the first node's exit removed the second one's address"
    );
    // `sta ctl` finds the running node through the state folder.
    let out = Command::new(STA)
        .args(["ctl", "--state-dir"])
        .arg(&state)
        .arg("status")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("second.bin"),
        "{text}"
    );
    ctl_ok(&second_api, &["quit"]);
    assert!(second.wait_exit(T).unwrap().success());
    assert!(!file.exists(), "the last node removes its own address");
}
