//! A torrent's dealings with the outside: the start-up check and resume
//! file, the tracker task, watching files for changes behind our back, and
//! the snapshots the UI reads.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use super::{Check, Role, Torrent, TrackerLink};
use crate::bitfield::Bitfield;
use crate::picker::{Picker, PickerConfig, PieceState};
use crate::resume::{self, ResumeData};
use crate::snapshot::SourceSnapshot;
use crate::snapshot::{
    FileSnapshot, PeerSnapshot, PieceDetail, PieceMap, TorrentSnapshot, TorrentState,
};
use crate::tracker_client::{self, AnnounceStats, ClientConfig, TrackerClient, TrackerStatus};
use crate::verify::verify_all;

const RESUME_EVERY: Duration = Duration::from_secs(30);
const FILE_CHECK_EVERY: Duration = Duration::from_secs(5);

impl Torrent {
    fn resume_path(&self) -> std::path::PathBuf {
        resume::path(
            &self.p.config.resolved_state_dir(),
            self.p.metainfo.info_hash,
        )
    }

    /// Trusts a matching resume file; otherwise hashes what is on disk.
    pub(super) fn start_check(&mut self, use_resume: bool) {
        self.state = TorrentState::Checking;
        let stamps = self.storage.file_stamps();
        let n = self.geo.num_pieces;
        if use_resume && let Some(d) = resume::load(&self.resume_path()) {
            if d.info_hash == self.p.metainfo.info_hash.to_hex() {
                self.totals.uploaded_before = d.uploaded;
                self.totals.downloaded_before = d.downloaded;
            }
            if let Some(have) = d.trusted_have(self.p.metainfo.info_hash, n, &stamps) {
                tracing::info!(
                    pieces = have.count(),
                    "resume file matches the files on disk; skipping the check"
                );
                let _ = self.check_tx.try_send(have);
                return;
            }
        }
        if stamps.iter().all(|s| s.is_none()) {
            // Nothing on disk yet: nothing to hash.
            let _ = self.check_tx.try_send(Bitfield::new(n));
            return;
        }
        let progress = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        self.check = Some(Check {
            progress: progress.clone(),
            stop: stop.clone(),
        });
        let storage = self.storage.clone();
        let hashes = self.p.metainfo.info.pieces.clone();
        let geo = self.geo;
        let tx = self.check_tx.clone();
        self.storage.close_all();
        self.tasks.spawn_blocking(move || {
            let have = verify_all(&storage, &hashes, geo, 0, &progress, &stop);
            let _ = tx.blocking_send(have);
        });
    }

    pub(super) fn on_check_done(&mut self, have: Bitfield) {
        let initial = self.tracker.is_none() && !self.paused;
        self.check = None;
        let complete = have.is_complete();
        if initial && self.p.role == Role::Seeder && !complete {
            let mut bad: Vec<String> = Vec::new();
            for i in have.iter_zeros() {
                for f in self.storage.files_of_piece(i, self.geo.piece_len(i)) {
                    let p = self.storage.file_path(f).display().to_string();
                    if !bad.contains(&p) {
                        bad.push(p);
                    }
                }
            }
            let missing = self.geo.num_pieces - have.count();
            self.fail(format!(
                "data does not verify: {missing} of {} pieces are missing or wrong, in: {}",
                self.geo.num_pieces,
                bad.join(", ")
            ));
            return;
        }
        let cfg = PickerConfig {
            strategy: self.p.config.picker,
            max_partial: super::max_partial_pieces(&self.p.config, self.geo.piece_length),
            ..Default::default()
        };
        tracing::info!(have = have.count(), of = self.geo.num_pieces, "check done");
        self.picker = Picker::new(self.geo, have, cfg);
        if initial {
            self.verified_at_start = self.verified_bytes();
        }
        self.buffers.clear();
        self.state = if complete {
            TorrentState::Seeding
        } else {
            TorrentState::Downloading
        };
        self.stamps = self.storage.file_stamps();
        self.resume_dirty = true;
        self.maybe_save_resume(Instant::now(), true);
        if self.tracker.is_none() && !self.paused {
            self.start_tracker();
        }
        if complete {
            let _ = self.storage.create_empty_files();
        }
    }

    pub(super) fn start_tracker(&mut self) {
        let m = &self.p.metainfo;
        let cfg = ClientConfig {
            info_hash: m.info_hash,
            peer_id: self.p.peer_id,
            port: self.p.announce_port,
            announce_ip: self.p.config.announce_ip,
            bind: self.p.config.bind,
            key: rand::random(),
        };
        let client = TrackerClient::new(m.trackers.clone(), cfg);
        let (stats_tx, stats_rx) = watch::channel(self.announce_stats());
        let (events_tx, events_rx) = mpsc::channel(4);
        let (status_tx, status_rx) = watch::channel(TrackerStatus::default());
        let cancel = self.cancel.child_token();
        self.tasks.spawn(tracker_client::run(
            client,
            stats_rx,
            events_rx,
            self.tracker_peers_tx.clone(),
            status_tx,
            cancel.clone(),
        ));
        self.tracker = Some(TrackerLink {
            events: events_tx,
            stats: stats_tx,
            status: status_rx,
            cancel,
        });
    }

    pub(super) fn stop_tracker(&mut self) {
        if let Some(t) = self.tracker.take() {
            t.update_final(self.announce_stats());
            t.cancel.cancel();
        }
    }

    fn announce_stats(&self) -> AnnounceStats {
        let left = self.geo.total_length - self.verified_bytes();
        AnnounceStats {
            uploaded: self.totals.uploaded_before + self.uploaded_total(),
            downloaded: self.totals.downloaded_before + self.totals.downloaded,
            left,
        }
    }

    pub(super) fn update_tracker_stats(&self) {
        if let Some(t) = &self.tracker {
            t.stats.send_replace(self.announce_stats());
        }
    }

    fn verified_bytes(&self) -> u64 {
        let have = self.picker.have();
        let mut n = u64::from(have.count()) * u64::from(self.geo.piece_length);
        let last = self.geo.num_pieces - 1;
        if have.has(last) {
            n = n - u64::from(self.geo.piece_length) + u64::from(self.geo.piece_len(last));
        }
        n
    }

    /// Saves the resume file on a blocking thread: data flushed first, so the
    /// file never claims a piece the disk does not hold.
    pub(super) fn maybe_save_resume(&mut self, now: Instant, force: bool) {
        if !force
            && (!self.resume_dirty || now.duration_since(self.last_resume_save) < RESUME_EVERY)
        {
            return;
        }
        self.resume_dirty = false;
        self.last_resume_save = now;
        self.resume_seq += 1;
        let seq = self.resume_seq;
        let have = self.picker.have().clone();
        let storage = self.storage.clone();
        let path = self.resume_path();
        let info_hash = self.p.metainfo.info_hash;
        let (up, down) = (
            self.totals.uploaded_before + self.uploaded_total(),
            self.totals.downloaded_before + self.totals.downloaded,
        );
        let lock = self.resume_lock.clone();
        self.tasks.spawn_blocking(move || {
            let mut last = lock.lock().expect("resume lock");
            if *last > seq {
                return; // a newer save already happened
            }
            if let Err(e) = storage.sync() {
                tracing::warn!(error = %e, "cannot flush data before saving resume state");
                return;
            }
            let data = ResumeData::new(info_hash, &have, &storage.file_stamps(), up, down);
            match resume::save(&path, &data) {
                Ok(()) => *last = seq,
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot save resume state")
                }
            }
        });
    }

    /// While seeding, files changed behind our back trigger a recheck; bad
    /// pieces stop being served and are downloaded again.
    pub(super) fn watch_files(&mut self, now: Instant) {
        if self.state != TorrentState::Seeding
            || now.duration_since(self.last_stamp_check) < FILE_CHECK_EVERY
        {
            return;
        }
        self.last_stamp_check = now;
        let stamps = self.storage.file_stamps();
        if stamps != self.stamps {
            tracing::warn!("files changed on disk while seeding; rechecking");
            for k in self.peers.keys().copied().collect::<Vec<_>>() {
                self.remove_peer(k, "rechecking data");
            }
            self.start_check(false);
        }
    }

    pub(super) fn piece_detail(&self, i: u32) -> Option<PieceDetail> {
        if i >= self.geo.num_pieces {
            return None;
        }
        let (received, total) = self.picker.progress_of(i).unwrap_or_else(|| {
            let n = self.geo.blocks_in_piece(i);
            (if self.picker.have().has(i) { n } else { 0 }, n)
        });
        let from_peers = self
            .buffers
            .get(&i)
            .map(|b| {
                let mut v: Vec<String> = b
                    .senders
                    .iter()
                    .flatten()
                    .map(|(_, ip)| ip.to_string())
                    .collect();
                v.sort();
                v.dedup();
                v
            })
            .unwrap_or_default();
        Some(PieceDetail {
            index: i,
            length: self.geo.piece_len(i),
            state: match self.picker.piece_state(i) {
                PieceState::Have => "have",
                PieceState::Downloading => "downloading",
                PieceState::Missing => "missing",
            }
            .into(),
            availability: self.picker.availability(i),
            blocks_received: received,
            blocks_total: total,
            from_peers,
            files: self
                .storage
                .files_of_piece(i, self.geo.piece_len(i))
                .into_iter()
                .map(|f| self.p.metainfo.info.files[f].display_path())
                .collect(),
        })
    }

    pub(super) fn publish_snapshot(&mut self, now: Instant) {
        let m = &self.p.metainfo;
        let geo = self.geo;
        let verified = if self.state == TorrentState::Checking {
            0
        } else {
            self.verified_bytes()
        };
        let uploaded = self.uploaded_total();
        let down_rate = self.down_meter.rate();
        let left = geo.total_length - verified;
        let opt = self.choker.optimistic();
        let timeout = Duration::from_secs(self.p.config.choker.snub_secs);
        let peers: Vec<PeerSnapshot> = self
            .peers
            .iter()
            .map(|(k, p)| PeerSnapshot {
                addr: p.addr.to_string(),
                client: p.peer_id.client_name(),
                peer_id: String::from_utf8_lossy(&p.peer_id.0[..8]).into_owned(),
                incoming: p.incoming,
                am_choking: p.state.am_choking,
                am_interested: p.state.am_interested,
                peer_choking: p.state.peer_choking,
                peer_interested: p.state.peer_interested,
                snubbed: p.state.snubbed
                    || (p.state.am_interested
                        && now
                            .duration_since(p.state.last_block_at.unwrap_or(p.state.connected_at))
                            >= timeout),
                optimistic: opt == Some(*k),
                down_rate: p.down_meter.rate(),
                up_rate: p.up_meter.rate(),
                downloaded: p.downloaded,
                uploaded: p.counters.uploaded.load(Ordering::Relaxed),
                pieces: p.state.have.count(),
                progress: f64::from(p.state.have.count()) / f64::from(geo.num_pieces.max(1)),
                requests_out: p.state.outstanding(),
                queue_target: p.state.queue_target,
            })
            .collect();
        let have = self.picker.have();
        let states: String = (0..geo.num_pieces)
            .map(|i| match self.picker.piece_state(i) {
                PieceState::Have => '#',
                PieceState::Downloading => '+',
                PieceState::Missing => '.',
            })
            .collect();
        let availability = (0..geo.num_pieces)
            .map(|i| self.picker.availability(i))
            .collect();
        let files = m
            .info
            .data_files()
            .map(|f| {
                let mut verified = 0u64;
                if f.length > 0 {
                    let first = (f.offset / u64::from(geo.piece_length)) as u32;
                    let last = ((f.offset + f.length - 1) / u64::from(geo.piece_length)) as u32;
                    for i in first..=last {
                        if have.has(i) {
                            let ps = u64::from(i) * u64::from(geo.piece_length);
                            let pe = ps + u64::from(geo.piece_len(i));
                            verified += pe.min(f.offset + f.length) - ps.max(f.offset);
                        }
                    }
                }
                FileSnapshot {
                    path: f.display_path(),
                    length: f.length,
                    verified,
                }
            })
            .collect();
        let check_progress = match &self.check {
            Some(c) => c.progress.load(Ordering::Relaxed) as f64 / geo.total_length.max(1) as f64,
            None => 1.0,
        };
        let snap = TorrentSnapshot {
            info_hash: m.info_hash.to_hex(),
            name: m.info.name.clone(),
            state: if self.paused {
                TorrentState::Paused
            } else {
                self.state
            },
            error: self.error.clone(),
            dir: self.storage.root().display().to_string(),
            total_length: geo.total_length,
            piece_length: geo.piece_length,
            num_pieces: geo.num_pieces,
            have_pieces: if self.state == TorrentState::Checking {
                0
            } else {
                have.count()
            },
            verified_bytes: verified,
            verified_at_start: self.verified_at_start,
            progress: verified as f64 / geo.total_length.max(1) as f64,
            check_progress,
            downloaded: self.totals.downloaded,
            uploaded,
            wasted: self.totals.wasted,
            downloaded_from_seeds: self.totals.from_seeds,
            downloaded_from_peers: self.totals.from_peers,
            hash_failures: self.totals.hash_failures,
            sources: {
                let mut v: Vec<SourceSnapshot> = self
                    .totals
                    .by_ip
                    .iter()
                    .map(|(ip, n)| SourceSnapshot {
                        ip: ip.to_string(),
                        downloaded: *n,
                    })
                    .collect();
                v.sort_by(|a, b| b.downloaded.cmp(&a.downloaded).then(a.ip.cmp(&b.ip)));
                v
            },
            ratio: (self.totals.uploaded_before + uploaded) as f64 / geo.total_length.max(1) as f64,
            down_rate,
            up_rate: self.up_meter.rate(),
            eta_secs: if left == 0 {
                Some(0)
            } else {
                (down_rate > 0).then(|| left / down_rate)
            },
            peers_connected: self.peers.len(),
            seeds_connected: self
                .peers
                .values()
                .filter(|p| p.state.have.is_complete())
                .count(),
            peers_known: self.known.len(),
            banned: self.banned.len(),
            max_upload_rate: self.up_limit.rate(),
            max_download_rate: self.down_limit.rate(),
            active_secs: self.started_at.elapsed().as_secs_f64(),
            completed_after_secs: self.completed_after,
            trackers: self
                .tracker
                .as_ref()
                .map(|t| vec![t.status.borrow().clone()])
                .unwrap_or_default(),
            peers,
            files,
            down_history: self.down_hist.points(),
            up_history: self.up_hist.points(),
            pieces: Arc::new(PieceMap {
                states,
                availability,
            }),
        };
        self.snapshot_tx.send_replace(snap);
    }
}

impl TrackerLink {
    /// Last numbers for the `stopped` announce.
    fn update_final(&self, s: AnnounceStats) {
        self.stats.send_replace(s);
    }
}
