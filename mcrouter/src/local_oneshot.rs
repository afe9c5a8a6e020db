//! A one-value channel between tasks of one worker thread: what `tokio::sync::oneshot`
//! does, without its atomics (one `Rc` cell, plain borrows). A destination connection
//! hands each request's reply to the request's future with one of these.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

struct Shared<T> {
    value: Option<T>,
    waker: Option<Waker>,
    /// The sender went away without sending.
    closed: bool,
    /// The receiver went away: a send gives the value back.
    dropped: bool,
}

pub struct Sender<T>(Rc<RefCell<Shared<T>>>);

pub struct Receiver<T>(Rc<RefCell<Shared<T>>>);

/// The sender was dropped without sending.
#[derive(Debug, PartialEq, Eq)]
pub struct Closed;

pub fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let shared = Rc::new(RefCell::new(Shared {
        value: None,
        waker: None,
        closed: false,
        dropped: false,
    }));
    (Sender(shared.clone()), Receiver(shared))
}

impl<T> Sender<T> {
    /// Hand `value` to the receiver (waking it); `Err(value)` when it is gone.
    pub fn send(self, value: T) -> Result<(), T> {
        let mut s = self.0.borrow_mut();
        if s.dropped {
            return Err(value);
        }
        s.value = Some(value);
        Ok(())
        // `drop(self)` wakes the receiver.
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let waker = {
            let mut s = self.0.borrow_mut();
            if s.value.is_none() {
                s.closed = true;
            }
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> Future for Receiver<T> {
    type Output = Result<T, Closed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut s = self.0.borrow_mut();
        if let Some(v) = s.value.take() {
            return Poll::Ready(Ok(v));
        }
        if s.closed {
            return Poll::Ready(Err(Closed));
        }
        match &s.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => s.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut s = self.0.borrow_mut();
        s.dropped = true;
        s.value = None;
        s.waker = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn poll<T>(rx: &mut Receiver<T>, count: &Arc<Count>) -> Poll<Result<T, Closed>> {
        let waker = Waker::from(count.clone());
        Pin::new(rx).poll(&mut Context::from_waker(&waker))
    }

    #[test]
    fn a_sent_value_wakes_the_waiting_receiver_once() {
        let count = Arc::new(Count::default());
        let (tx, mut rx) = channel();
        assert!(poll(&mut rx, &count).is_pending());
        assert!(
            poll(&mut rx, &count).is_pending(),
            "polled again, still waiting"
        );
        assert_eq!(tx.send(7), Ok(()));
        assert_eq!(count.0.load(Ordering::Relaxed), 1);
        assert_eq!(poll(&mut rx, &count), Poll::Ready(Ok(7)));
    }

    #[test]
    fn a_value_sent_before_the_first_poll_is_there() {
        let count = Arc::new(Count::default());
        let (tx, mut rx) = channel();
        tx.send("v").unwrap();
        assert_eq!(poll(&mut rx, &count), Poll::Ready(Ok("v")));
        assert_eq!(count.0.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_dropped_sender_closes_the_channel() {
        let count = Arc::new(Count::default());
        let (tx, mut rx) = channel::<u8>();
        assert!(poll(&mut rx, &count).is_pending());
        drop(tx);
        assert_eq!(count.0.load(Ordering::Relaxed), 1);
        assert_eq!(poll(&mut rx, &count), Poll::Ready(Err(Closed)));
    }

    #[test]
    fn a_send_to_a_dropped_receiver_gives_the_value_back() {
        let (tx, rx) = channel();
        drop(rx);
        assert_eq!(tx.send(vec![1u8]), Err(vec![1u8]));
    }
}
