//! The lab's network: one Linux network namespace per host, each joined by a
//! veth pair to a bridge that lives in a namespace of its own (so nothing
//! routes to the machine's real network), with `tbf` shaping on both ends of
//! every link: the host end limits upload, the bridge end download. Names
//! are `sta-<pid>-*`; everything is removed on drop, whatever happened.

use std::process::Command;

use anyhow::{Context, bail};

/// Addresses inside the lab: 10.77.0.0/24, only ever inside its namespaces.
pub fn host_ip(i: usize) -> String {
    format!("10.77.0.{}", i + 1)
}

#[derive(Debug, Clone)]
pub struct Link {
    /// Upload limit, bits per second.
    pub up: u64,
    /// Download limit, bits per second.
    pub down: u64,
}

pub struct LabNet {
    pub hosts: Vec<String>,
    bridge: String,
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("cannot run `ip` (install iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn in_ns(ns: &str, cmd: &[&str]) -> anyhow::Result<()> {
    let mut all = vec!["netns", "exec", ns];
    all.extend_from_slice(cmd);
    let out = Command::new("ip")
        .args(&all)
        .output()
        .context("cannot run `ip netns exec`")?;
    if !out.status.success() {
        bail!(
            "{} (in {ns}): {}",
            cmd.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// `tbf` needs a burst of at least one MTU-sized packet per timer tick; a
/// tenth of a second of traffic, floored at 32 KiB, keeps rates accurate.
fn tbf(ns: &str, dev: &str, rate: u64) -> anyhow::Result<()> {
    let burst = (rate / 8 / 10).max(32 * 1024).to_string();
    in_ns(
        ns,
        &[
            "tc",
            "qdisc",
            "add",
            "dev",
            dev,
            "root",
            "tbf",
            "rate",
            &format!("{rate}bit"),
            "burst",
            &burst,
            "latency",
            "200ms",
        ],
    )
}

impl LabNet {
    /// Builds `links.len()` hosts, host `i` at [`host_ip`]`(i)` shaped by `links[i]`.
    pub fn build(links: &[Link]) -> anyhow::Result<LabNet> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            bail!("sta lab needs root: it creates network namespaces (run it with sudo)");
        }
        let prefix = format!("sta-{}", std::process::id());
        let mut net = LabNet {
            bridge: format!("{prefix}-br"),
            hosts: Vec::new(),
        };
        ip(&["netns", "add", &net.bridge])?;
        in_ns(&net.bridge, &["ip", "link", "add", "br0", "type", "bridge"])?;
        in_ns(&net.bridge, &["ip", "link", "set", "br0", "up"])?;
        let pid = std::process::id() % 100_000;
        for (i, l) in links.iter().enumerate() {
            let ns = format!("{prefix}-h{i}");
            ip(&["netns", "add", &ns])?;
            net.hosts.push(ns.clone());
            // Interface names have at most 15 characters.
            let a = format!("s{pid}h{i}a");
            let b = format!("s{pid}h{i}b");
            ip(&["link", "add", &a, "type", "veth", "peer", "name", &b])?;
            ip(&["link", "set", &a, "netns", &ns])?;
            ip(&["link", "set", &b, "netns", &net.bridge])?;
            in_ns(&net.bridge, &["ip", "link", "set", &b, "master", "br0"])?;
            in_ns(&net.bridge, &["ip", "link", "set", &b, "up"])?;
            in_ns(
                &ns,
                &[
                    "ip",
                    "addr",
                    "add",
                    &format!("{}/24", host_ip(i)),
                    "dev",
                    &a,
                ],
            )?;
            in_ns(&ns, &["ip", "link", "set", &a, "up"])?;
            in_ns(&ns, &["ip", "link", "set", "lo", "up"])?;
            tbf(&ns, &a, l.up)?;
            tbf(&net.bridge, &b, l.down)?;
        }
        Ok(net)
    }

    /// Names of namespaces this program made, now or in a run that died.
    pub fn stale() -> Vec<String> {
        let out = Command::new("ip").args(["netns", "list"]).output();
        let text = out
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        text.lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|n| n.starts_with("sta-"))
            .map(String::from)
            .collect()
    }

    pub fn remove(names: &[String]) {
        for n in names {
            let _ = Command::new("ip").args(["netns", "del", n]).output();
        }
    }

    pub fn all_names(&self) -> Vec<String> {
        let mut v = self.hosts.clone();
        v.push(self.bridge.clone());
        v
    }
}

impl Drop for LabNet {
    fn drop(&mut self) {
        // Deleting a namespace deletes its veth ends and qdiscs with it.
        Self::remove(&self.all_names());
    }
}
