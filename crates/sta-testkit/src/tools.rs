//! External tools the interop tests need. With `CI=true` a missing tool is a
//! failure, never a silent skip.

/// True when `name` is on PATH. When it is not: panics under `CI=true`,
/// otherwise prints why the test is skipped and returns false.
pub fn require_tool(name: &str) -> bool {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|d| d.join(name).is_file()))
        .unwrap_or(false);
    if !found {
        if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
            panic!("{name} is required under CI=true but is not installed (.ci/run installs it)");
        }
        eprintln!("skipping: {name} is not installed");
    }
    found
}

/// True when IPv6 loopback (`::1`) can be bound for TCP and UDP. When it
/// cannot: panics under `CI=true` (the CI machine must have it), otherwise
/// prints why the test is skipped and returns false.
pub fn require_ipv6() -> bool {
    let ok = std::net::UdpSocket::bind("[::1]:0").is_ok()
        && std::net::TcpListener::bind("[::1]:0").is_ok();
    if !ok {
        if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
            panic!("IPv6 loopback ::1 is required under CI=true but cannot be bound here");
        }
        eprintln!("skipping: no IPv6 loopback here");
    }
    ok
}

/// Python with libtorrent, for interop tests (Debian's /usr/bin/python3).
pub fn require_libtorrent() -> bool {
    let ok = std::process::Command::new("/usr/bin/python3")
        .args(["-c", "import libtorrent"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
            panic!("python3-libtorrent is required under CI=true but is not installed");
        }
        eprintln!("skipping: python3-libtorrent is not installed");
    }
    ok
}

/// Whether this run is under CI (`CI=true` or `CI=1`), where a missing tool
/// or capability fails a test instead of skipping it.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// For a capability a test needs (root, mounting, namespaces): true when
/// `available`; otherwise panics under CI, or prints why the test is skipped
/// and returns false.
pub fn require_capability(available: bool, what: &str) -> bool {
    if !available {
        if under_ci() {
            panic!("{what} is required under CI=true but is not available here");
        }
        eprintln!("skipping: {what} is not available here");
    }
    available
}

/// Root, for tests that make network namespaces or mount file systems.
pub fn require_root(why: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    require_capability(root, &format!("root ({why})"))
}
