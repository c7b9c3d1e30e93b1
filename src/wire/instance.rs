//! This process's name among the replicas sharing a store: the host, the process id and
//! the moment it started (`host-pid-start`), so no two processes ever share it, also
//! across restarts. Leases and claims are held under it.

use std::sync::OnceLock;

/// The same name for the whole life of the process.
pub fn name() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "host".to_string());
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        format!("{host}-{}-{started:x}", std::process::id())
    })
}
