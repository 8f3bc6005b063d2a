//! The journal gets at most one warning per `warn_interval` however many
//! writes fail: a counting `tracing` subscriber watches /dev/full writes.

use geofence_alert::{Alert, AlertLog, AlertLogOptions, EventKind};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

struct CountWarns(Arc<AtomicUsize>);

impl Subscriber for CountWarns {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, e: &Event<'_>) {
        if *e.metadata().level() == Level::WARN {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[test]
fn failures_are_warned_about_once_per_interval() {
    let warns = Arc::new(AtomicUsize::new(0));
    let sub = CountWarns(Arc::clone(&warns));
    tracing::subscriber::with_default(sub, || {
        let opts = AlertLogOptions {
            ring_capacity: 100,
            retry_interval: Duration::ZERO,
            inode_check_interval: Duration::from_secs(3600),
            warn_interval: Duration::from_millis(300),
            host: None,
        };
        let Ok(mut log) = AlertLog::open_with(Path::new("/dev/full"), opts) else {
            geofence_testkit::skip("no /dev/full");
            return;
        };
        for _ in 0..1000 {
            log.write(&Alert::new(EventKind::Flow, "alert", "x"));
        }
        assert!(log.stats().failed >= 1000);
        assert_eq!(
            warns.load(Ordering::SeqCst),
            1,
            "one warning for 1000 failures"
        );
        std::thread::sleep(Duration::from_millis(350));
        for _ in 0..1000 {
            log.write(&Alert::new(EventKind::Flow, "alert", "x"));
        }
        assert_eq!(
            warns.load(Ordering::SeqCst),
            2,
            "one more after the interval"
        );
    });
}
