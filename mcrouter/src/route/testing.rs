//! Mock destinations for route handle tests: a leaf route that answers a fixed reply
//! (optionally after a delay), counts and records the requests it gets.

use std::future::Future;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;

use super::{Ctx, Node, Route, RouteFuture, RouteRef};
use crate::destination::{DestOptions, WorkerDests};
use crate::reply::{classify, Reply};
use crate::request::Req;

#[derive(Debug)]
pub struct Mock {
    reply: Mutex<Vec<u8>>,
    delay_ms: u64,
    count: AtomicUsize,
    seen: Mutex<Vec<Vec<u8>>>,
    /// Replies for particular keys (others get `reply`).
    by_key: Mutex<Vec<(Vec<u8>, Vec<u8>)>>,
}

impl Mock {
    pub fn replying(reply: &str) -> Arc<Mock> {
        Self::delayed(reply, 0)
    }

    pub fn delayed(reply: &str, delay_ms: u64) -> Arc<Mock> {
        Arc::new(Mock {
            reply: Mutex::new(reply.as_bytes().to_vec()),
            delay_ms,
            count: AtomicUsize::new(0),
            seen: Mutex::new(Vec::new()),
            by_key: Mutex::new(Vec::new()),
        })
    }

    /// Answer `reply` to requests for `key` from now on (the latest answer for a key wins).
    pub fn answer_key(&self, key: &str, reply: &str) {
        self.by_key
            .lock()
            .push((key.as_bytes().to_vec(), reply.as_bytes().to_vec()));
    }

    pub fn r(self: &Arc<Self>) -> RouteRef {
        self.clone()
    }

    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// The raw requests received.
    pub fn seen(&self) -> Vec<Vec<u8>> {
        self.seen.lock().clone()
    }

    pub fn req(s: &str) -> Req {
        Req::from_wire(s.as_bytes()).expect("valid request")
    }
}

impl Route for Mock {
    fn name(&self) -> String {
        "Mock".into()
    }

    fn route(&self, req: Req, _ctx: &Rc<Ctx>) -> RouteFuture {
        self.count.fetch_add(1, Ordering::SeqCst);
        self.seen.lock().push(req.raw().to_vec());
        let keyed = self
            .by_key
            .lock()
            .iter()
            .rev()
            .find(|(k, _)| k[..] == *req.routing_key())
            .map(|(_, r)| r.clone());
        let bytes = Bytes::from(keyed.unwrap_or_else(|| self.reply.lock().clone()));
        let kind = protocol::parse_response(&bytes)
            .ok()
            .flatten()
            .map(|(r, _)| classify(&r))
            .unwrap_or(crate::reply::ReplyKind::Ok);
        let kind = if bytes.starts_with(b"VALUE") {
            crate::reply::ReplyKind::Hit
        } else {
            kind
        };
        let delay = self.delay_ms;
        Box::pin(async move {
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            Reply { kind, bytes }
        })
    }
}

/// Run `f` on a current-thread runtime inside a `LocalSet`, with a worker context.
pub fn run<F, Fut>(f: F)
where
    F: FnOnce(Rc<Ctx>) -> Fut,
    Fut: Future<Output = ()>,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    let ctx = Rc::new(Ctx {
        dests: WorkerDests::new(DestOptions::default()),
        coalesce: Default::default(),
        asynclog: None,
    });
    local.block_on(&rt, f(ctx));
}

/// Calls `f` with a config node of type `type_name` at path `route` holding the JSON
/// object `json` (for tests of option parsing).
pub fn with_json_node<T>(json: &str, type_name: &str, f: impl FnOnce(&Node<'_>) -> T) -> T {
    let v: serde_json::Value = serde_json::from_str(json).expect("test JSON");
    f(&Node {
        path: "route".into(),
        type_name: type_name.into(),
        obj: v.as_object(),
        arg: None,
    })
}

/// Build each `(json, error)` case with `build` as a node of `type_name`: `None` must
/// build, `Some(e)` must fail with a message containing `e`.
pub fn check_configs(
    type_name: &str,
    build: fn(
        &Node<'_>,
        &mut crate::config::Builder,
    ) -> Result<RouteRef, crate::config::ConfigError>,
    cases: &[(String, Option<&str>)],
) {
    for (json, err) in cases {
        let got = with_json_node(json, type_name, |n| {
            build(n, &mut crate::config::Builder::new(&Default::default())).map(|_| ())
        });
        match err {
            None => assert!(got.is_ok(), "{json}: {got:?}"),
            Some(e) => {
                let msg = got.expect_err(json).to_string();
                assert!(msg.contains(e), "{json}: {msg}");
            }
        }
    }
}

/// The requests `m` received, as text.
pub fn seen(m: &Mock) -> Vec<String> {
    m.seen()
        .iter()
        .map(|r| String::from_utf8_lossy(r).into_owned())
        .collect()
}

/// Let tasks spawned in the background (requests not waited for) run.
pub async fn settle() {
    for _ in 0..4 {
        tokio::task::yield_now().await;
    }
}
