//! A connection's watchdog: the token that closes it (a refusal, the
//! shutdown) and its IDLE_TIMEOUT timer, looked at only when one of them
//! has woken the connection's task. The timer also cuts a connection whose
//! client has taken nothing of its responses for IDLE_TIMEOUT (conn.rs says
//! how that is told).
//!
//! A `select!` over the connection and these two polls all three each time
//! the task wakes, which is twice per keep-alive request: the token takes a
//! mutex to tell it is not cancelled, the timer reads its entry, and
//! `select!` draws a random number to pick the branch it polls first (about
//! 650 instructions per request, benches/RESULTS.md). Here the token and the
//! timer are polled with a waker of their own, which notes that one of them
//! fired before it wakes the task, so a wake-up by the connection's I/O
//! polls the connection alone. Written here: neither tokio nor futures-util
//! has a select that leaves alone the branches that did not wake.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use futures_util::task::AtomicWaker;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::WaitForCancellationFuture;

use crate::conn::Activity;

/// Set by the token's or the timer's wake-up, which it passes on to the task.
struct Fired {
    fired: AtomicBool,
    task: AtomicWaker,
}

impl Wake for Fired {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.fired.store(true, Ordering::Release);
        self.task.wake();
    }
}

/// How a connection is to finish.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Finish {
    /// its close token, or IDLE_TIMEOUT with nothing in flight: after what
    /// is in flight (GOAWAY, `Connection: close`)
    Graceful,
    /// its client took nothing of its responses for IDLE_TIMEOUT: now, with
    /// what is in flight (a graceful end would wait for that forever)
    Cut,
}

/// What tells a connection to finish: its close token, IDLE_TIMEOUT
/// passing with nothing in flight, or a client that takes nothing.
pub(super) struct Watchdog<'a> {
    fired: Arc<Fired>,
    waker: Waker,
    cancelled: Pin<Box<WaitForCancellationFuture<'a>>>,
    idle: Pin<Box<Sleep>>,
    activity: &'a Activity,
    idle_limit: Duration,
    /// said [`Finish::Graceful`] already: only a cut is left to say
    graceful: bool,
    /// what the timer's last look found waiting (`Activity::client_stalled`)
    stall_seen: Option<u64>,
}

impl<'a> Watchdog<'a> {
    pub(super) fn new(
        cancelled: WaitForCancellationFuture<'a>,
        activity: &'a Activity,
        idle_limit: Duration,
    ) -> Watchdog<'a> {
        let fired = Arc::new(Fired {
            // so that the first poll arms both
            fired: AtomicBool::new(true),
            task: AtomicWaker::new(),
        });
        let wait = activity.idle_remaining(idle_limit).unwrap_or_default();
        Watchdog {
            waker: Waker::from(fired.clone()),
            fired,
            cancelled: Box::pin(cancelled),
            idle: Box::pin(tokio::time::sleep(wait)),
            activity,
            idle_limit,
            graceful: false,
            stall_seen: None,
        }
    }

    /// Whether the connection is to finish now, and how; each is said once.
    /// Until then the task is woken when the token is cancelled or the idle
    /// timer fires.
    pub(super) fn poll_finish(&mut self, cx: &mut Context<'_>) -> Option<Finish> {
        // registered before the flag is read: a wake-up in between is not lost
        self.fired.task.register(cx.waker());
        if !self.fired.fired.swap(false, Ordering::AcqRel) {
            return None;
        }
        let mut own = Context::from_waker(&self.waker);
        let mut finish = None;
        if !self.graceful && self.cancelled.as_mut().poll(&mut own).is_ready() {
            self.graceful = true;
            finish = Some(Finish::Graceful);
        }
        // The timer stays armed once the end is graceful: a client that
        // takes nothing of what is still in flight is cut all the same.
        loop {
            if self.idle.as_mut().poll(&mut own).is_pending() {
                return finish;
            }
            if self.activity.client_stalled(&mut self.stall_seen) {
                // marked before the connection drops its socket, which is
                // then reset (cuttable.rs)
                self.activity.cut();
                return Some(Finish::Cut);
            }
            let wait = match self.activity.idle_remaining(self.idle_limit) {
                None if !self.graceful => {
                    self.graceful = true;
                    finish = Some(Finish::Graceful);
                    self.idle_limit
                }
                // finishing already: looked at again for a stall only
                None => self.idle_limit,
                // busy or used since: wait the rest
                Some(rest) => rest,
            };
            // polled again to arm it
            self.idle.as_mut().reset(Instant::now() + wait);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Poll;
    use tokio_util::sync::CancellationToken;

    /// A waker that counts its wake-ups.
    struct Counting(std::sync::atomic::AtomicUsize);
    impl Wake for Counting {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Whether the watchdog says finish within `bound`; the bound is looked
    /// at first, so a wake-up that never came is not hidden by a later poll
    /// that finds the flag set.
    async fn finishes_within(dog: &mut Watchdog<'_>, bound: Duration) -> Option<Finish> {
        let finish = std::future::poll_fn(|cx| match dog.poll_finish(cx) {
            Some(how) => Poll::Ready(how),
            None => Poll::Pending,
        });
        tokio::select! {
            biased;
            _ = tokio::time::sleep(bound) => None,
            how = finish => Some(how),
        }
    }

    #[tokio::test]
    async fn the_token_wakes_the_task_and_finishes_the_connection() {
        let token = CancellationToken::new();
        let activity = Activity::new();
        let count = Arc::new(Counting(Default::default()));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let mut dog = Watchdog::new(token.cancelled(), &activity, Duration::from_secs(60));
        assert_eq!(dog.poll_finish(&mut cx), None, "not cancelled yet");
        assert_eq!(
            dog.poll_finish(&mut cx),
            None,
            "polled without a wake-up of its own"
        );
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
        token.cancel();
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "the token woke the task");
        assert_eq!(
            dog.poll_finish(&mut cx),
            Some(Finish::Graceful),
            "cancelled: finish"
        );
    }

    #[tokio::test]
    async fn the_idle_timer_finishes_an_idle_connection_and_not_a_busy_one() {
        const LIMIT: Duration = Duration::from_millis(300);
        let token = CancellationToken::new();
        let activity = Activity::new();
        let start = std::time::Instant::now();
        let mut dog = Watchdog::new(token.cancelled(), &activity, LIMIT);
        assert_eq!(
            finishes_within(&mut dog, Duration::from_secs(10)).await,
            Some(Finish::Graceful),
            "an idle connection is finished"
        );
        assert!(start.elapsed() >= LIMIT, "not before IDLE_TIMEOUT");

        // a request in flight: the timer fires, is armed again, and the
        // connection stays
        let activity = Activity::new();
        let busy = activity.begin();
        let mut dog = Watchdog::new(token.cancelled(), &activity, LIMIT);
        assert_eq!(
            finishes_within(&mut dog, LIMIT * 3).await,
            None,
            "a busy connection is not finished"
        );
        drop(busy);
        activity.touch();
        assert_eq!(
            finishes_within(&mut dog, Duration::from_secs(10)).await,
            Some(Finish::Graceful),
            "idle once the request is done"
        );
    }

    #[tokio::test]
    async fn a_client_that_takes_nothing_is_cut_after_the_idle_limit_and_one_that_takes_is_not() {
        const LIMIT: Duration = Duration::from_millis(1000);
        let token = CancellationToken::new();

        // a body waits on its client, which takes nothing
        let activity = Activity::new();
        let _busy = activity.begin();
        activity.wait_on_client();
        let start = std::time::Instant::now();
        let mut dog = Watchdog::new(token.cancelled(), &activity, LIMIT);
        assert_eq!(
            finishes_within(&mut dog, Duration::from_secs(10)).await,
            Some(Finish::Cut),
            "a stalled client is cut"
        );
        assert!(start.elapsed() >= LIMIT, "not before IDLE_TIMEOUT");

        // the same, but the client takes a frame now and then
        let activity = Activity::new();
        let _busy = activity.begin();
        activity.wait_on_client();
        let mut dog = Watchdog::new(token.cancelled(), &activity, LIMIT);
        let taking = async {
            for _ in 0..60 {
                tokio::time::sleep(LIMIT / 20).await;
                activity.client_moved();
                activity.wait_on_client();
            }
        };
        let (finished, ()) = tokio::join!(finishes_within(&mut dog, LIMIT * 3), taking);
        assert_eq!(finished, None, "a client that takes is not cut");

        // finishing gracefully (a refusal, the shutdown) and then stalled: cut
        let closing = CancellationToken::new();
        let activity = Activity::new();
        let _busy = activity.begin();
        activity.wait_on_client();
        let mut dog = Watchdog::new(closing.cancelled(), &activity, LIMIT);
        closing.cancel();
        assert_eq!(
            finishes_within(&mut dog, Duration::from_secs(10)).await,
            Some(Finish::Graceful)
        );
        assert_eq!(
            finishes_within(&mut dog, Duration::from_secs(10)).await,
            Some(Finish::Cut),
            "a graceful end does not wait on a client that takes nothing"
        );
    }
}
