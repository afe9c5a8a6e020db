//! `FailoverRoute`: tries the children in order, moving to the next only when a reply is
//! an error of one of the `failover_errors` classes (default: mcrouter's
//! `isFailoverErrorResult`, every error except the backend rejecting the request:
//! `CLIENT_ERROR` is passed to the client, not retried elsewhere).
//!
//! Config: `{"type": "FailoverRoute", "children": [...], "failover_errors":
//! ["connect_error", "timeout", "tko", ...]}`, or per operation kind (mcrouter's
//! `FailoverErrorsSettings`): `"failover_errors": {"gets": [...], "updates": [...],
//! "deletes": [...]}`, where an operation kind left out keeps the default. The first
//! child is the primary; the rest are tried in order (a gutter pool is a FailoverRoute's
//! second child).
//!
//! As mcrouter's `FailoverRoute` (`mcrouter/routes/FailoverRoute.h`, options read by
//! `makeFailoverRouteWithPolicyAndFailoverError` in `FailoverRoute-inl.h`) it also takes:
//!
//! - `"failover_limit": {"rate": 0.1, "burst": 1000}`: at most that share of the
//!   requests fails over ([`FailoverLimiter`]); over the budget the reply in hand is
//!   returned (the primary's error).
//! - `"failover_policy"` (`FailoverPolicy.h`): `{"type": "InOrderPolicy", "max_tries":
//!   N, "exclude_errors": [...]}` (also `FailoverInOrderPolicy`; the default, every
//!   child in order; `max_tries` caps the counted error replies, as mcrouter's
//!   `FailoverInOrderPolicy::maxErrorTries`; `max_error_tries` is accepted as the same
//!   cap. A deliberate superset: mcrouter's config factory builds the in-order policy
//!   without reading these options, so there they have no effect) or `{"type": "DeterministicOrderPolicy", "max_tries": N, "max_error_tries":
//!   M, "hash": {"hash_func": "Ch3" | "WeightedCh3", "weights": [...]},
//!   "exclude_errors": [...], "ignore_normal_reply_index": false}` (both counts
//!   required; the route's own `hash` wins over the policy's). TKO replies (`tko`,
//!   `connect_error`, `connect_timeout`) and `exclude_errors` do not count as error
//!   tries, and failing over from a TKO takes no `failover_limit` token. Or
//!   `{"type": "LeastFailuresPolicy", "max_tries": N}` (required): the primary first,
//!   then the other children by how many error replies each gave in a row lately
//!   (fewest first, config order among equals), at most N children in all; a child's
//!   count goes up with each error reply it gives and back to zero with any other
//!   reply. mcrouter keeps these counts per proxy thread, this router per route (all
//!   workers share them). Or `{"type": "RendezvousPolicy"}` with the route's `"tags":
//!   [...]` (one per child after the primary; else the policy's own `tags`): the
//!   primary, then every other child in the rendezvous order of the routing key over
//!   the tags (`Rendezvous`, or `WeightedRendezvous` with the policy's `weights` when
//!   the route says `"hash": "WeightedRendezvous"`; see [`crate::hash::rendezvous`]),
//!   skipping the primary's own destination; no error limit. Other policy types are a
//!   config error (mcrouter falls back to in-order for unknown names).
//! - `"failover_tag": bool` is checked and ignored (mcrouter uses it for Carbon reply
//!   fields the text protocol does not carry).

use std::io::Write as _;
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::Value;

use super::{destinations_for, join, Ctx, Node, Route, RouteFuture, RouteRef};
use crate::config::{Builder, ConfigError, HashSpec};
use crate::hash::{routing_key, HashFunc, Rendezvous, Weights};
use crate::reply::{ErrorClass, ErrorSet, Reply};
use crate::request::{Op, Req};

/// `failover_errors`: the error classes that make a failover route try its next child,
/// per operation kind as in mcrouter's `FailoverErrorsSettings` (get-like, update-like,
/// delete-like; arithmetic, touch and the rest always use the default). `None` for a
/// kind: the default, [`ErrorClass::is_failover_default`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FailoverErrors {
    pub gets: Option<ErrorSet>,
    pub updates: Option<ErrorSet>,
    pub deletes: Option<ErrorSet>,
}

impl FailoverErrors {
    /// The same list for every operation kind (the list form of the config).
    pub fn list(classes: &[ErrorClass]) -> FailoverErrors {
        let s = Some(ErrorSet::of(classes));
        FailoverErrors {
            gets: s,
            updates: s,
            deletes: s,
        }
    }

    /// Whether `reply` to an `op` request should make a failover route try its next
    /// child.
    pub fn should_failover(&self, op: Op, reply: &Reply) -> bool {
        let Some(c) = reply.error_class() else {
            return false;
        };
        let set = match op {
            Op::Get | Op::Gets | Op::Gat | Op::Gats | Op::MetaGet | Op::LeaseGet => self.gets,
            Op::Set
            | Op::Add
            | Op::Replace
            | Op::Append
            | Op::Prepend
            | Op::Cas
            | Op::LeaseSet
            | Op::MetaSet => self.updates,
            Op::Delete | Op::MetaDelete => self.deletes,
            _ => None,
        };
        match set {
            None => c.is_failover_default(),
            Some(s) => s.contains(c),
        }
    }
}

/// Route to `children[order[0]]`, then the next on failover errors.
pub fn failover_in_order(
    children: Arc<[RouteRef]>,
    order: Vec<usize>,
    errors: FailoverErrors,
    req: Req,
    ctx: &Rc<Ctx>,
) -> RouteFuture {
    let first = children[order[0]].route(req.clone(), ctx);
    let ctx = ctx.clone();
    Box::pin(async move {
        let op = req.op();
        let mut reply = first.await;
        for &i in &order[1..] {
            if !errors.should_failover(op, &reply) {
                break;
            }
            reply = children[i].route(req.clone(), &ctx).await;
        }
        reply
    })
}

/// `failover_limit`: mcrouter's `FailoverRateLimiter`
/// (`mcrouter/routes/FailoverRateLimiter.{h,cpp}`), a token bucket whose clock is the
/// number of requests the route has handled, not time: `rate` (clamped to `[0, 1]`) is
/// the share of requests that may fail over, `burst` (at least 1, default
/// [`DEFAULT_FAILOVER_BURST`]) the depth. The bucket starts full. Every request adds
/// `rate` tokens once its first reply is in; each failover away from a reply that is
/// not a TKO (`tko`, `connect_error`, `connect_timeout`: nothing was sent) takes one.
/// Without a token the route answers the reply it has (the primary's error for the
/// first failover).
///
/// mcrouter keeps one limiter per proxy thread; the route tree here is shared by the
/// workers, so the budget is for the whole router.
#[derive(Debug)]
pub struct FailoverLimiter {
    rate: f64,
    burst: f64,
    total: AtomicU64,
    /// folly `TokenBucket`'s `zeroTime`: the clock value at which the bucket was empty.
    zero: Mutex<f64>,
}

/// mcrouter's `kDefaultBurst` for `failover_limit`.
pub const DEFAULT_FAILOVER_BURST: f64 = 1000.0;

impl FailoverLimiter {
    pub fn new(rate: f64, burst: f64) -> Self {
        FailoverLimiter {
            rate: rate.clamp(0.0, 1.0),
            burst: burst.max(1.0),
            total: AtomicU64::new(0),
            // "allow `burst` requests at time 0".
            zero: Mutex::new(-1e6),
        }
    }

    /// A request got its first reply.
    fn bump(&self) {
        self.total.fetch_add(1, Ordering::Relaxed);
    }

    /// Take a token for one failover, if there is one.
    fn allowed(&self) -> bool {
        let now = self.total.load(Ordering::Relaxed) as f64;
        let mut zero = self.zero.lock();
        let tokens = ((now - *zero) * self.rate).min(self.burst);
        if tokens < 1.0 {
            return false;
        }
        *zero = now - (tokens - 1.0) / self.rate;
        true
    }
}

/// The order a [`FailoverRoute`] tries its children in.
#[derive(Debug, Clone)]
pub enum FailoverOrder {
    /// `children` in config order (mcrouter's `FailoverInOrderPolicy`, the default).
    InOrder,
    /// mcrouter's `FailoverDeterministicOrderPolicy`: the primary first, then children
    /// picked by hashing the key with salts 2, 3, ... over all the children, skipping
    /// the ones already tried (at most 100 draws per pick). mcrouter also skips the
    /// child at the position the primary's hash picked (plus one); this router skips the
    /// failover child that is the same server as the primary's pick instead, which is the
    /// same child only when the failover list mirrors the primary pool.
    Deterministic {
        func: HashFunc,
        /// Skip the failover child that is the destination the primary already sent
        /// to (mcrouter: unless `ignore_normal_reply_index`).
        skip_primary_destination: bool,
    },
    /// mcrouter's `FailoverLeastFailuresPolicy`: the primary, then the others by their
    /// count of recent error replies in a row (fewest first; config order among equals).
    LeastFailures {
        /// Per child: error replies since its last other reply.
        recent_errors: Arc<[AtomicU32]>,
    },
    /// mcrouter's `FailoverRendezvousPolicy`: the primary, then every other child in
    /// the rendezvous order of the routing key over their `tags`, skipping the child
    /// that is the destination the primary sent to (mcrouter skips the child at the
    /// position the primary pool's hash picked, which is that child when the failover
    /// list mirrors the pool, as it does in mcrouter's own uses).
    Rendezvous {
        /// Over children 1.. (the primary has no tag).
        func: Rendezvous,
    },
}

/// `failover_policy`: which children, in what order, and how many errors to accept.
#[derive(Debug, Clone)]
pub struct FailoverPolicy {
    pub order: FailoverOrder,
    /// Children tried at most, the primary included.
    pub max_tries: usize,
    /// After this many counted error replies no other child is tried. TKO replies
    /// (`tko`, `connect_error`, `connect_timeout`) and `exclude_errors` do not count.
    pub max_error_tries: usize,
    pub exclude_errors: ErrorSet,
}

impl FailoverPolicy {
    /// Note child `i`'s reply (LeastFailuresPolicy counts errors in a row per child).
    fn record(&self, i: usize, reply: &Reply) {
        if let FailoverOrder::LeastFailures { recent_errors } = &self.order {
            if let Some(c) = recent_errors.get(i) {
                if reply.is_error() {
                    c.fetch_add(1, Ordering::Relaxed);
                } else if c.load(Ordering::Relaxed) != 0 {
                    c.store(0, Ordering::Relaxed);
                }
            }
        }
    }

    /// Every child in order until one answers (mcrouter's default).
    pub fn in_order(children: usize) -> Self {
        FailoverPolicy {
            order: FailoverOrder::InOrder,
            max_tries: children,
            max_error_tries: usize::MAX,
            exclude_errors: ErrorSet::default(),
        }
    }
}

/// The failover children of one request, in policy order.
enum Picker {
    InOrder(usize),
    Deterministic {
        salt: u32,
        used: Vec<bool>,
    },
    /// The failover children in the order chosen after the primary's reply.
    Ordered(std::vec::IntoIter<usize>),
}

impl Picker {
    fn new(policy: &FailoverPolicy, children: &[RouteRef], req: &Req) -> Picker {
        match &policy.order {
            FailoverOrder::InOrder => Picker::InOrder(0),
            FailoverOrder::Deterministic {
                skip_primary_destination,
                ..
            } => {
                let mut used = vec![false; children.len()];
                used[0] = true;
                if *skip_primary_destination {
                    if let Some(i) = primary_destination_index(children, req) {
                        used[i] = true;
                    }
                }
                Picker::Deterministic { salt: 1, used }
            }
            FailoverOrder::LeastFailures { recent_errors } => {
                let mut order: Vec<usize> = (1..children.len()).collect();
                // Stable: config order among children with equal counts.
                order.sort_by_key(|&i| recent_errors[i].load(Ordering::Relaxed));
                Picker::Ordered(order.into_iter())
            }
            FailoverOrder::Rendezvous { func } => {
                let skip = primary_destination_index(children, req);
                let order: Vec<usize> = func
                    .rank(routing_key(req.routing_key()))
                    .into_iter()
                    .map(|i| i + 1)
                    .filter(|&i| Some(i) != skip)
                    .collect();
                Picker::Ordered(order.into_iter())
            }
        }
    }

    /// The next child to try; `None` when the policy has no more.
    fn next(&mut self, policy: &FailoverPolicy, req: &Req) -> Option<usize> {
        match self {
            Picker::InOrder(i) => {
                *i += 1;
                Some(*i)
            }
            Picker::Ordered(order) => order.next(),
            Picker::Deterministic { salt, used } => {
                let FailoverOrder::Deterministic { func, .. } = &policy.order else {
                    unreachable!("a deterministic picker has a deterministic policy")
                };
                let key = routing_key(req.routing_key());
                let mut buf = Vec::with_capacity(key.len() + 10);
                let mut index = 0;
                for attempt in 0..=MAX_PICK_ATTEMPTS {
                    *salt += 1;
                    buf.clear();
                    buf.extend_from_slice(key);
                    let _ = write!(buf, "{salt}");
                    index = func.pick(&buf);
                    if !used[index] || attempt == MAX_PICK_ATTEMPTS {
                        break;
                    }
                }
                used[index] = true;
                Some(index)
            }
        }
    }
}

/// mcrouter's `maxAttempts` for one deterministic pick.
const MAX_PICK_ATTEMPTS: u32 = 100;

/// The failover child (index >= 1) that is the one destination the primary sends `req`
/// to, if any (mcrouter skips `children[selectedIndex + 1]`, the position in the
/// failover list of the server the normal route's hash picked).
fn primary_destination_index(children: &[RouteRef], req: &Req) -> Option<usize> {
    let primary = destinations_for(&children[0], req);
    let [d] = primary.as_slice() else {
        return None;
    };
    (1..children.len()).find(|&j| {
        let c = destinations_for(&children[j], req);
        c.len() == 1 && c[0].id == d.id
    })
}

#[derive(Debug)]
struct Inner {
    children: Vec<RouteRef>,
    errors: FailoverErrors,
    limiter: Option<FailoverLimiter>,
    policy: FailoverPolicy,
}

impl Inner {
    /// mcrouter's `FailoverRoute::processReply`: whether to try another child after
    /// `reply`, counting the try and taking a `failover_limit` token.
    fn go_on(&self, op: Op, reply: &Reply, error_tries: &mut usize) -> bool {
        if !self.errors.should_failover(op, reply) {
            return false;
        }
        let class = reply.error_class();
        let tko = matches!(
            class,
            Some(ErrorClass::Tko | ErrorClass::ConnectError | ErrorClass::ConnectTimeout)
        );
        if !tko {
            if let Some(l) = &self.limiter {
                if !l.allowed() {
                    return false;
                }
            }
            if !class.is_some_and(|c| self.policy.exclude_errors.contains(c)) {
                *error_tries += 1;
            }
        }
        true
    }
}

#[derive(Debug)]
pub struct FailoverRoute {
    inner: Arc<Inner>,
}

impl FailoverRoute {
    /// Every child in order, no limit.
    pub fn new(children: Vec<RouteRef>, errors: FailoverErrors) -> Self {
        let policy = FailoverPolicy::in_order(children.len());
        Self::with_options(children, errors, None, policy)
    }

    pub fn with_options(
        children: Vec<RouteRef>,
        errors: FailoverErrors,
        limiter: Option<FailoverLimiter>,
        policy: FailoverPolicy,
    ) -> Self {
        FailoverRoute {
            inner: Arc::new(Inner {
                children,
                errors,
                limiter,
                policy,
            }),
        }
    }
}
impl FailoverRoute {
    /// Which errors fail over.
    pub fn errors(&self) -> FailoverErrors {
        self.inner.errors
    }
}

impl Route for FailoverRoute {
    fn name(&self) -> String {
        "FailoverRoute".into()
    }

    /// mcrouter's `FailoverRoute::doRoute`.
    fn route(&self, req: Req, ctx: &Rc<Ctx>) -> RouteFuture {
        let inner = &self.inner;
        if inner.children.len() == 1 {
            return inner.children[0].route(req, ctx);
        }
        let first = inner.children[0].route(req.clone(), ctx);
        let inner = inner.clone();
        let ctx = ctx.clone();
        Box::pin(async move {
            let op = req.op();
            let mut reply = first.await;
            inner.policy.record(0, &reply);
            if let Some(l) = &inner.limiter {
                l.bump();
            }
            let mut error_tries = 0;
            if !inner.go_on(op, &reply, &mut error_tries) {
                return reply;
            }
            let policy = &inner.policy;
            let mut picker = Picker::new(policy, &inner.children, &req);
            for attempt in 1..policy.max_tries {
                if error_tries >= policy.max_error_tries {
                    break;
                }
                let Some(i) = picker.next(policy, &req) else {
                    break;
                };
                reply = inner.children[i].route(req.clone(), &ctx).await;
                policy.record(i, &reply);
                if attempt + 1 == policy.max_tries || !inner.go_on(op, &reply, &mut error_tries) {
                    break;
                }
            }
            reply
        })
    }

    fn children(&self) -> Vec<RouteRef> {
        self.inner.children.clone()
    }

    fn children_for(&self, _req: &Req) -> Vec<RouteRef> {
        self.inner.children.clone()
    }
}

/// mcrouter's failover policy names.
pub const FAILOVER_POLICY_TYPES: &[&str] = &[
    "InOrderPolicy",
    "FailoverInOrderPolicy",
    "DeterministicOrderPolicy",
    "LeastFailuresPolicy",
    "RendezvousPolicy",
];

/// `failover_limit`: `{"rate": r, "burst": b}` (mcrouter's `FailoverRateLimiter`).
pub fn parse_failover_limit(node: &Node<'_>) -> Result<Option<FailoverLimiter>, ConfigError> {
    let Some(n) = node.object_field(
        "failover_limit",
        "expected an object {\"rate\": <0..1>, \"burst\": <at least 1>}",
    )?
    else {
        return Ok(None);
    };
    let Some(rate) = n.f64_field("rate")? else {
        return Err(n.err("rate", "missing; expected a number from 0 to 1"));
    };
    let burst = n.f64_field("burst")?.unwrap_or(DEFAULT_FAILOVER_BURST);
    Ok(Some(FailoverLimiter::new(rate, burst)))
}

/// A positive whole number at `name` of the policy node, at most `cap` (mcrouter logs a
/// larger one and uses `cap`).
fn tries_field(n: &Node<'_>, name: &str, cap: usize) -> Result<Option<usize>, ConfigError> {
    match n.field(name) {
        None => Ok(None),
        Some(v) => match v.as_u64() {
            Some(t) if t >= 1 => Ok(Some((t as usize).min(cap))),
            _ => Err(n.err(
                name,
                format!("expected a whole number of at least 1, got {v}"),
            )),
        },
    }
}

/// `failover_policy` (mcrouter's `makeFailoverRouteWithFailoverErrorSettings` and
/// `FailoverPolicy.h`) for a route with `children` children. The policy object's
/// `hash` is overridden by the route's own `hash`, as in mcrouter.
pub fn parse_failover_policy(
    node: &Node<'_>,
    children: usize,
) -> Result<FailoverPolicy, ConfigError> {
    let Some(n) = node.object_field("failover_policy", "expected an object with a \"type\"")?
    else {
        return Ok(FailoverPolicy::in_order(children));
    };
    let Some(kind) = n.str_field("type")? else {
        return Err(n.err(
            "type",
            format!(
                "missing; expected one of {}",
                FAILOVER_POLICY_TYPES.join(", ")
            ),
        ));
    };
    let exclude_errors = match n.field("exclude_errors") {
        Some(list) => n.error_set("exclude_errors", list)?,
        None => ErrorSet::default(),
    };
    match kind {
        // mcrouter's FailoverInOrderPolicy: `max_tries` bounds the counted error tries
        // (its `maxErrorTries()`), every child stays a candidate.
        "InOrderPolicy" | "FailoverInOrderPolicy" => {
            let max_tries = tries_field(&n, "max_tries", usize::MAX)?;
            let max_error_tries = tries_field(&n, "max_error_tries", usize::MAX)?;
            let limit = match (max_tries, max_error_tries) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) | (None, Some(a)) => a,
                (None, None) => usize::MAX,
            };
            Ok(FailoverPolicy {
                order: FailoverOrder::InOrder,
                max_tries: children,
                max_error_tries: limit,
                exclude_errors,
            })
        }
        "DeterministicOrderPolicy" => {
            let Some(max_tries) = tries_field(&n, "max_tries", children)? else {
                return Err(n.err("max_tries", "missing; DeterministicOrderPolicy needs it"));
            };
            let Some(max_error_tries) = tries_field(&n, "max_error_tries", max_tries)? else {
                return Err(n.err(
                    "max_error_tries",
                    "missing; DeterministicOrderPolicy needs it",
                ));
            };
            let ignore = n.bool_field("ignore_normal_reply_index")?.unwrap_or(false);
            // The route's `hash` wins over the policy's.
            let (hash, hash_path) = match node.field("hash") {
                Some(h) => (Some(h), join(&node.path, "hash")),
                None => (n.field("hash"), join(&n.path, "hash")),
            };
            let func = deterministic_hash(hash, &hash_path, children)?;
            Ok(FailoverPolicy {
                order: FailoverOrder::Deterministic {
                    func,
                    skip_primary_destination: !ignore,
                },
                max_tries,
                max_error_tries,
                exclude_errors,
            })
        }
        "LeastFailuresPolicy" => {
            let Some(max_tries) = tries_field(&n, "max_tries", children)? else {
                return Err(n.err("max_tries", "missing; LeastFailuresPolicy needs it"));
            };
            Ok(FailoverPolicy {
                order: FailoverOrder::LeastFailures {
                    recent_errors: (0..children).map(|_| AtomicU32::new(0)).collect(),
                },
                max_tries,
                max_error_tries: usize::MAX,
                exclude_errors,
            })
        }
        // mcrouter builds no policy for a single child.
        "RendezvousPolicy" if children <= 1 => Ok(FailoverPolicy::in_order(children)),
        "RendezvousPolicy" => Ok(FailoverPolicy {
            order: FailoverOrder::Rendezvous {
                func: rendezvous_policy_hash(node, &n, children)?,
            },
            max_tries: children,
            max_error_tries: usize::MAX,
            // mcrouter's policy excludes no error from its (unlimited) count.
            exclude_errors: ErrorSet::default(),
        }),
        other => Err(n.err(
            "type",
            format!(
                "unknown failover policy {other:?}; expected one of {}",
                FAILOVER_POLICY_TYPES.join(", ")
            ),
        )),
    }
}

/// RendezvousPolicy's hash over children 1..: `tags` from the route (else from the
/// policy), one per failover child; `WeightedRendezvous` with the policy's `weights` when
/// the route says `"hash": "WeightedRendezvous"`, else `Rendezvous` (mcrouter's
/// `makeFailoverRouteWithFailoverErrorSettings` and `FailoverRendezvousPolicy`).
fn rendezvous_policy_hash(
    node: &Node<'_>,
    policy: &Node<'_>,
    children: usize,
) -> Result<Rendezvous, ConfigError> {
    let (tags, tags_path) =
        match node.field("tags") {
            Some(t) => (t, join(&node.path, "tags")),
            None => match policy.field("tags") {
                Some(t) => (t, join(&policy.path, "tags")),
                None => return Err(policy.err(
                    "tags",
                    "missing; RendezvousPolicy needs the route's `tags`, one per failover child",
                )),
            },
        };
    let tags: Vec<String> = tags
        .as_array()
        .and_then(|a| a.iter().map(|t| t.as_str().map(String::from)).collect())
        .ok_or_else(|| ConfigError::at(tags_path.clone(), "expected a list of strings"))?;
    let hosts = children.saturating_sub(1);
    if tags.len() != hosts {
        return Err(ConfigError::at(
            tags_path,
            format!(
                "RendezvousPolicy: number of tags {} doesn't match number of failover children {hosts}",
                tags.len()
            ),
        ));
    }
    let weighted =
        matches!(node.field("hash"), Some(Value::String(h)) if h == "WeightedRendezvous");
    let spec = HashSpec::from_node(policy, None)?;
    let weights = match (weighted, &spec.weights, &spec.tag_weights) {
        (false, _, _) => None,
        (true, Some(w), _) => Some(Weights::List(w)),
        (true, None, Some(w)) => Some(Weights::ByTag(w)),
        (true, None, None) => None,
    };
    let name = if weighted {
        "WeightedRendezvous"
    } else {
        "Rendezvous"
    };
    match HashFunc::from_config_tagged(name, &tags, weights, Some(&tags)) {
        Ok(HashFunc::Rendezvous(r)) => Ok(r),
        Ok(_) => unreachable!("a rendezvous name builds a rendezvous hash"),
        Err(e) => Err(ConfigError::at(policy.path.clone(), e.to_string())),
    }
}

/// DeterministicOrderPolicy's hash over the route's children: `Ch3` (default) or
/// `WeightedCh3` with `weights`, from `{"hash_func": ..., "weights": [...]}`.
fn deterministic_hash(
    hash: Option<&Value>,
    path: &str,
    children: usize,
) -> Result<HashFunc, ConfigError> {
    let names = vec![""; children];
    let (name, weights) = match hash {
        None => ("Ch3", None),
        Some(Value::Object(h)) => {
            let name = match h.get("hash_func") {
                None => "Ch3",
                Some(Value::String(s)) => s.as_str(),
                Some(_) => {
                    return Err(ConfigError::at(
                        join(path, "hash_func"),
                        "expected a string",
                    ))
                }
            };
            let weights = match h.get("weights") {
                None => None,
                Some(w) => Some(
                    w.as_array()
                        .and_then(|a| a.iter().map(Value::as_f64).collect::<Option<Vec<f64>>>())
                        .ok_or_else(|| {
                            ConfigError::at(join(path, "weights"), "expected a list of numbers")
                        })?,
                ),
            };
            (name, weights)
        }
        Some(Value::String(s)) => (s.as_str(), None),
        Some(_) => {
            return Err(ConfigError::at(
                path.to_string(),
                "expected an object or a hash function name",
            ))
        }
    };
    if name != "Ch3" && name != "WeightedCh3" {
        return Err(ConfigError::at(
            join(path, "hash_func"),
            format!("DeterministicOrderPolicy hashes with Ch3 or WeightedCh3, not {name:?}"),
        ));
    }
    HashFunc::from_config(name, &names, weights.as_deref())
        .map_err(|e| ConfigError::at(path.to_string(), e.to_string()))
}

pub fn build(node: &Node<'_>, b: &mut Builder) -> Result<RouteRef, ConfigError> {
    let children = node.children(b)?;
    let errors = node.failover_errors("failover_errors")?;
    let limiter = parse_failover_limit(node)?;
    let policy = parse_failover_policy(node, children.len())?;
    // `failover_tag` (mcrouter: tag the failover hop count on Carbon replies) has no
    // effect on the text protocol; checked like mcrouter, then ignored.
    node.bool_field("failover_tag")?;
    Ok(Arc::new(FailoverRoute::with_options(
        children, errors, limiter, policy,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::testing::{run, with_json_node, Mock};

    #[test]
    fn fails_over_on_errors_only() {
        run(|ctx| async move {
            let down = Mock::replying("SERVER_ERROR down\r\n");
            let up = Mock::replying("VALUE k 0 1\r\nv\r\nEND\r\n");
            let r = FailoverRoute::new(vec![down.r(), up.r()], FailoverErrors::default());
            let reply = r.route(Mock::req("get k\r\n"), &ctx).await;
            assert!(reply.is_hit());
            assert_eq!((down.count(), up.count()), (1, 1));
            // A miss is not an error: no failover.
            let miss = Mock::replying("END\r\n");
            let r = FailoverRoute::new(vec![miss.r(), up.r()], FailoverErrors::default());
            assert!(r.route(Mock::req("get k\r\n"), &ctx).await.is_miss());
            assert_eq!(up.count(), 1);
        });
    }

    #[test]
    fn failover_errors_restricts_the_classes() {
        run(|ctx| async move {
            let remote = Mock::replying("SERVER_ERROR remote\r\n");
            let up = Mock::replying("STORED\r\n");
            let r = FailoverRoute::new(
                vec![remote.r(), up.r()],
                FailoverErrors::list(&[ErrorClass::Timeout]),
            );
            let reply = r.route(Mock::req("set k 0 0 1\r\nx\r\n"), &ctx).await;
            assert!(reply.is_error());
            assert_eq!(up.count(), 0);
            let r = FailoverRoute::new(
                vec![remote.r(), up.r()],
                FailoverErrors::list(&[ErrorClass::RemoteError]),
            );
            let reply = r.route(Mock::req("set k 0 0 1\r\nx\r\n"), &ctx).await;
            assert_eq!(&reply.bytes[..], b"STORED\r\n");
        });
    }

    #[test]
    fn client_errors_are_replies_not_failover_errors() {
        run(|ctx| async move {
            let up = Mock::replying("NOT_FOUND\r\n");
            for line in [
                "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
                "ERROR\r\n",
            ] {
                let bad = Mock::replying(line);
                let r = FailoverRoute::new(vec![bad.r(), up.r()], FailoverErrors::default());
                let reply = r.route(Mock::req("incr t 1\r\n"), &ctx).await;
                assert_eq!(&reply.bytes[..], line.as_bytes());
                assert_eq!(reply.error_class(), Some(ErrorClass::ClientError));
            }
            assert_eq!(up.count(), 0);
            // Only when the config asks for it (for gets, updates and deletes; arithmetic
            // always uses the default, as in mcrouter).
            let bad = Mock::replying("CLIENT_ERROR bad data chunk\r\n");
            let r = FailoverRoute::new(
                vec![bad.r(), up.r()],
                FailoverErrors::list(&[ErrorClass::ClientError]),
            );
            let reply = r.route(Mock::req("delete t\r\n"), &ctx).await;
            assert_eq!(&reply.bytes[..], b"NOT_FOUND\r\n");
            let reply = r.route(Mock::req("incr t 1\r\n"), &ctx).await;
            assert!(reply.bytes.starts_with(b"CLIENT_ERROR"));
        });
    }

    /// Build from JSON at path `route`.
    fn parse(json: &str) -> Result<FailoverErrors, ConfigError> {
        with_json_node(json, "FailoverRoute", |n| {
            n.failover_errors("failover_errors")
        })
    }

    #[test]
    fn failover_errors_per_operation_kind() {
        let e = parse(
            r#"{"failover_errors": {"gets": ["timeout", "connect_error"],
                                    "deletes": ["shutdown", "try_again"]}}"#,
        )
        .unwrap();
        let timeout = Reply::error(ErrorClass::Timeout, "t");
        let remote = Reply::error(ErrorClass::RemoteError, "r");
        let client = Reply::error_static(ErrorClass::ClientError, b"CLIENT_ERROR x\r\n");
        // gets: only the listed classes.
        assert!(e.should_failover(Op::Get, &timeout));
        assert!(e.should_failover(Op::MetaGet, &timeout));
        assert!(!e.should_failover(Op::Get, &remote));
        // updates: not given, so the default (every error but a client error).
        assert!(e.should_failover(Op::Set, &remote));
        assert!(e.should_failover(Op::MetaSet, &timeout));
        assert!(!e.should_failover(Op::Set, &client));
        // deletes: names of results we never produce match nothing.
        assert!(!e.should_failover(Op::Delete, &timeout));
        assert!(!e.should_failover(Op::MetaDelete, &remote));
        // Arithmetic and touch are neither: always the default.
        assert!(e.should_failover(Op::Incr, &remote));
        assert!(!e.should_failover(Op::MetaArithmetic, &client));
        assert!(e.should_failover(Op::Touch, &timeout));
        // Never a non-error.
        assert!(!e.should_failover(Op::Get, &Reply::default_for(&Mock::req("get k\r\n"))));

        // The list form: the same for every kind; every mcrouter error name loads.
        let e = parse(
            r#"{"failover_errors": ["connect_error", "connect_timeout", "timeout", "tko",
                "remote_error", "local_error", "busy", "try_again", "shutdown", "aborted",
                "ooo", "bad_command", "bad_key", "bad_flags", "bad_exptime", "bad_lease_id",
                "bad_cas_id", "bad_value", "client_error"]}"#,
        )
        .unwrap();
        assert_eq!(e.gets, e.updates);
        assert_eq!(e.gets, e.deletes);
        assert!(e.should_failover(Op::Delete, &client));
        // Absent: the default for every kind.
        assert_eq!(parse("{}").unwrap(), FailoverErrors::default());
    }

    #[test]
    fn failover_errors_config_errors_name_the_path() {
        let err = |json: &str| parse(json).unwrap_err().to_string();
        let e = err(r#"{"failover_errors": {"gets": ["nope"]}}"#);
        assert!(
            e.contains("route.failover_errors.gets[0]: unknown error \"nope\""),
            "{e}"
        );
        assert!(e.contains("try_again"), "{e}");
        let e = err(r#"{"failover_errors": {"updates": "timeout"}}"#);
        assert!(
            e.contains("route.failover_errors.updates: expected a list"),
            "{e}"
        );
        let e = err(r#"{"failover_errors": {"get": ["timeout"]}}"#);
        assert!(
            e.contains("route.failover_errors.get: unknown operation kind"),
            "{e}"
        );
        let e = err(r#"{"failover_errors": ["timeout", 3]}"#);
        assert!(
            e.contains("route.failover_errors[1]: expected a string"),
            "{e}"
        );
        let e = err(r#"{"failover_errors": "timeout"}"#);
        assert!(e.contains("route.failover_errors: expected a list"), "{e}");
    }

    /// A leaf answering an error of `class` (TKO and timeouts cannot come from a mock
    /// backend's bytes).
    #[derive(Debug)]
    struct Failing(ErrorClass, std::sync::atomic::AtomicUsize);

    impl Failing {
        fn new(class: ErrorClass) -> Arc<Failing> {
            Arc::new(Failing(class, Default::default()))
        }
        fn count(&self) -> usize {
            self.1.load(Ordering::SeqCst)
        }
    }

    impl Route for Failing {
        fn name(&self) -> String {
            "Failing".into()
        }
        fn route(&self, _req: Req, _ctx: &Rc<Ctx>) -> RouteFuture {
            self.1.fetch_add(1, Ordering::SeqCst);
            super::super::ready(Reply::error(self.0, "x"))
        }
    }

    fn policy(json: &str, children: usize) -> Result<FailoverPolicy, String> {
        with_json_node(json, "FailoverRoute", |n| {
            parse_failover_policy(n, children)
        })
        .map_err(|e| e.to_string())
    }

    fn limit(json: &str) -> Result<Option<FailoverLimiter>, String> {
        with_json_node(json, "FailoverRoute", parse_failover_limit).map_err(|e| e.to_string())
    }

    /// mcrouter's `failoverRouteTest.rateLimit`: rate 0.5, burst 1; the bucket starts
    /// full and every request adds half a token.
    #[test]
    fn failover_limit_is_a_share_of_the_requests() {
        run(|ctx| async move {
            let down = Mock::replying("SERVER_ERROR down\r\n");
            let up = Mock::replying("VALUE k 0 1\r\nv\r\nEND\r\n");
            let r = FailoverRoute::with_options(
                vec![down.r(), up.r()],
                FailoverErrors::default(),
                Some(FailoverLimiter::new(0.5, 1.0)),
                FailoverPolicy::in_order(2),
            );
            let mut got = Vec::new();
            for _ in 0..6 {
                let reply = r.route(Mock::req("get k\r\n"), &ctx).await;
                got.push(reply.is_hit());
            }
            // Beyond the budget: the primary's error.
            assert_eq!(got, [true, false, true, false, true, false]);
            assert_eq!((down.count(), up.count()), (6, 3));
            // A success takes no token and still adds to the budget.
            let limiter = FailoverLimiter::new(0.5, 1.0);
            limiter.bump();
            assert!(limiter.allowed());
            limiter.bump();
            limiter.bump();
            assert!(limiter.allowed());
            assert!(!limiter.allowed());
            // Rate 0: never.
            let never = FailoverLimiter::new(0.0, 1000.0);
            never.bump();
            assert!(!never.allowed());
        });
    }

    /// mcrouter's `rateLimitWithTKO`: failing over from a TKO takes no token.
    #[test]
    fn failover_limit_spares_tko() {
        run(|ctx| async move {
            let tko = Failing::new(ErrorClass::Tko);
            let up = Mock::replying("STORED\r\n");
            let r = FailoverRoute::with_options(
                vec![tko.clone(), up.r()],
                FailoverErrors::default(),
                Some(FailoverLimiter::new(0.5, 1.0)),
                FailoverPolicy::in_order(2),
            );
            for _ in 0..4 {
                let reply = r.route(Mock::req("set k 0 0 1\r\nx\r\n"), &ctx).await;
                assert_eq!(&reply.bytes[..], b"STORED\r\n");
            }
            assert_eq!(up.count(), 4);
        });
    }

    #[test]
    fn failover_limit_config() {
        assert!(limit("{}").unwrap().is_none());
        let l = limit(r#"{"failover_limit": {"rate": 0.25}}"#)
            .unwrap()
            .unwrap();
        assert_eq!((l.rate, l.burst), (0.25, DEFAULT_FAILOVER_BURST));
        let l = limit(r#"{"failover_limit": {"rate": 7, "burst": 0}}"#)
            .unwrap()
            .unwrap();
        assert_eq!((l.rate, l.burst), (1.0, 1.0));
        let e = limit(r#"{"failover_limit": {"burst": 5}}"#).unwrap_err();
        assert!(e.contains("route.failover_limit.rate: missing"), "{e}");
        let e = limit(r#"{"failover_limit": 0.5}"#).unwrap_err();
        assert!(
            e.contains("route.failover_limit: expected an object"),
            "{e}"
        );
        let e = limit(r#"{"failover_limit": {"rate": "x"}}"#).unwrap_err();
        assert!(
            e.contains("route.failover_limit.rate: expected a number"),
            "{e}"
        );
    }

    fn det(children: usize, max_tries: usize, max_error_tries: usize) -> FailoverPolicy {
        policy(
            &format!(
                r#"{{"failover_policy": {{"type": "DeterministicOrderPolicy",
                    "max_tries": {max_tries}, "max_error_tries": {max_error_tries}}}}}"#
            ),
            children,
        )
        .unwrap()
    }

    fn reached(leaves: &[Arc<Failing>]) -> usize {
        leaves.iter().filter(|l| l.count() > 0).count()
    }

    fn leaves(classes: &[ErrorClass]) -> (Vec<Arc<Failing>>, Vec<RouteRef>) {
        let l: Vec<Arc<Failing>> = classes.iter().map(|c| Failing::new(*c)).collect();
        let r = l.iter().map(|x| x.clone() as RouteRef).collect();
        (l, r)
    }

    /// mcrouter's `deterministicOrderTimeout`, `deterministicOrderTko`,
    /// `ignoreTkoAndHardTko`: `max_error_tries` counts errors other than TKO, connect
    /// errors and `exclude_errors`; `max_tries` bounds the children tried.
    /// mcrouter's `FailoverLeastFailuresPolicy`: after the primary, the child with the
    /// fewest errors in a row goes first; a good reply clears a child's count.
    #[test]
    fn least_failures_tries_the_child_that_failed_least() {
        run(|ctx| async move {
            let down = Mock::replying("SERVER_ERROR down\r\n");
            let flaky = Mock::replying("SERVER_ERROR flaky\r\n");
            let up = Mock::replying("VALUE k 0 1\r\nv\r\nEND\r\n");
            let p = policy(
                r#"{"failover_policy": {"type": "LeastFailuresPolicy", "max_tries": 2}}"#,
                3,
            )
            .unwrap();
            assert_eq!(p.max_tries, 2);
            let r = FailoverRoute::with_options(
                vec![down.r(), flaky.r(), up.r()],
                FailoverErrors::default(),
                None,
                p,
            );
            let mut got = Vec::new();
            for _ in 0..4 {
                got.push(r.route(Mock::req("get k\r\n"), &ctx).await.is_hit());
            }
            // 1st: counts equal, config order: flaky (fails; max_tries 2 ends it).
            // Then flaky has one error more than up: up goes first from now on.
            assert_eq!(got, [false, true, true, true]);
            assert_eq!((down.count(), flaky.count(), up.count()), (4, 1, 3));
        });
        // Errors count in a row; any other reply clears the count.
        let p = policy(
            r#"{"failover_policy": {"type": "LeastFailuresPolicy", "max_tries": 3}}"#,
            3,
        )
        .unwrap();
        let err = Reply::error(ErrorClass::Timeout, "x");
        let ok = Reply {
            kind: crate::reply::ReplyKind::Miss,
            bytes: bytes::Bytes::from_static(b"END\r\n"),
        };
        let counts = |p: &FailoverPolicy| match &p.order {
            FailoverOrder::LeastFailures { recent_errors } => recent_errors
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .collect::<Vec<_>>(),
            _ => unreachable!(),
        };
        p.record(1, &err);
        p.record(1, &err);
        p.record(2, &err);
        assert_eq!(counts(&p), [0, 2, 1]);
        p.record(1, &ok);
        assert_eq!(counts(&p), [0, 0, 1]);
    }

    #[test]
    fn deterministic_order_tries() {
        use ErrorClass::*;
        run(|ctx| async move {
            let (l, r) = leaves(&[Timeout; 4]);
            let route =
                FailoverRoute::with_options(r, FailoverErrors::default(), None, det(4, 4, 2));
            route.route(Mock::req("get 0\r\n"), &ctx).await;
            assert_eq!(reached(&l), 2);

            let (l, r) = leaves(&[Tko; 5]);
            let route =
                FailoverRoute::with_options(r, FailoverErrors::default(), None, det(5, 4, 2));
            route.route(Mock::req("get 0\r\n"), &ctx).await;
            assert_eq!(reached(&l), 4);

            let (l, r) = leaves(&[Tko, ConnectError, Tko, ConnectError]);
            let route =
                FailoverRoute::with_options(r, FailoverErrors::default(), None, det(4, 3, 2));
            route.route(Mock::req("get 0\r\n"), &ctx).await;
            assert_eq!(reached(&l), 3);

            // Every child at most once, whatever the key.
            for k in 0..50 {
                let (l, r) = leaves(&[RemoteError; 6]);
                let route =
                    FailoverRoute::with_options(r, FailoverErrors::default(), None, det(6, 6, 6));
                route.route(Mock::req(&format!("get k{k}\r\n")), &ctx).await;
                assert!(l.iter().all(|x| x.count() == 1), "k{k}");
            }

            let p = policy(
                r#"{"failover_policy": {"type": "DeterministicOrderPolicy", "max_tries": 5,
                    "max_error_tries": 2, "exclude_errors": ["remote_error"]}}"#,
                5,
            )
            .unwrap();
            let (l, r) = leaves(&[RemoteError, Timeout, Tko, ConnectError, RemoteError]);
            let route = FailoverRoute::with_options(r, FailoverErrors::default(), None, p);
            route.route(Mock::req("get 0\r\n"), &ctx).await;
            assert_eq!(reached(&l), 5);
        });
    }

    /// The failover order depends on the key only: the same for the same key, and not
    /// the config order for every key.
    #[test]
    fn deterministic_order_follows_the_key() {
        run(|ctx| async move {
            let mut orders = std::collections::HashSet::new();
            for k in 0..20 {
                let mut order = Vec::new();
                for _ in 0..2 {
                    let m: Vec<Arc<Mock>> = (0..5)
                        .map(|_| Mock::replying("SERVER_ERROR x\r\n"))
                        .collect();
                    let up = Mock::replying("STORED\r\n");
                    let mut children: Vec<RouteRef> = m.iter().map(|x| x.r()).collect();
                    children.push(up.r());
                    let route = FailoverRoute::with_options(
                        children,
                        FailoverErrors::default(),
                        None,
                        det(6, 2, 2),
                    );
                    route
                        .route(Mock::req(&format!("set k{k} 0 0 1\r\nx\r\n")), &ctx)
                        .await;
                    // The primary, then one child picked by the hash.
                    assert_eq!(m[0].count(), 1);
                    let picked: Vec<usize> = (1..5).filter(|&i| m[i].count() == 1).collect();
                    order.push((picked, up.count()));
                }
                assert_eq!(order[0], order[1], "k{k}");
                orders.insert(order[0].clone());
            }
            assert!(orders.len() > 2, "{orders:?}");
        });
    }

    const RV_TAGS: [&str; 3] = ["xxx.0.yy", "xxx.1.yy", "xxx.2.yy"];

    /// Which of a primary (failing) and three hosts a `set` of `key` reaches when only
    /// host `up` answers (`None`: none does).
    async fn rendezvous_reached(
        ctx: &Rc<Ctx>,
        json: &str,
        key: &str,
        up: Option<usize>,
    ) -> Vec<usize> {
        let primary = Mock::replying("SERVER_ERROR primary\r\n");
        let hosts: Vec<Arc<Mock>> = (0..3)
            .map(|i| {
                Mock::replying(if Some(i) == up {
                    "STORED\r\n"
                } else {
                    "SERVER_ERROR host\r\n"
                })
            })
            .collect();
        let mut children = vec![primary.r()];
        children.extend(hosts.iter().map(|h| h.r()));
        let route = FailoverRoute::with_options(
            children,
            FailoverErrors::default(),
            None,
            policy(json, 4).unwrap(),
        );
        route
            .route(Mock::req(&format!("set {key} 0 0 1\r\nx\r\n")), ctx)
            .await;
        assert_eq!(primary.count(), 1);
        assert!(hosts.iter().all(|h| h.count() <= 1));
        (0..3).filter(|&i| hosts[i].count() == 1).collect()
    }

    /// mcrouter's `FailoverRendezvousPolicy`: after the primary, the hosts in the
    /// rendezvous order of the key over the route's `tags`, each once, until one answers.
    #[test]
    fn rendezvous_policy_tries_hosts_in_rendezvous_order() {
        run(|ctx| async move {
            let json = r#"{"tags": ["xxx.0.yy", "xxx.1.yy", "xxx.2.yy"],
                "failover_policy": {"type": "RendezvousPolicy"}}"#;
            for key in ["sample", "mykey", "k1", "k2", "k3"] {
                let order = Rendezvous::new(&RV_TAGS).rank(key.as_bytes());
                if key == "sample" {
                    // mcrouter's golden pick for "sample" over these tags.
                    assert_eq!(order[0], 1);
                }
                for pos in 0..3 {
                    let mut want = order[..=pos].to_vec();
                    want.sort_unstable();
                    let got = rendezvous_reached(&ctx, json, key, Some(order[pos])).await;
                    assert_eq!(got, want, "{key}: up at rank {pos}");
                }
                assert_eq!(rendezvous_reached(&ctx, json, key, None).await, [0, 1, 2]);
            }
            // The policy's own tags serve when the route has none; the route's win.
            let own = r#"{"failover_policy": {"type": "RendezvousPolicy",
                "tags": ["xxx.0.yy", "xxx.1.yy", "xxx.2.yy"]}}"#;
            let both = r#"{"tags": ["xxx.0.yy", "xxx.1.yy", "xxx.2.yy"],
                "failover_policy": {"type": "RendezvousPolicy", "tags": ["a", "b", "c"]}}"#;
            for json in [own, both] {
                let order = Rendezvous::new(&RV_TAGS).rank(b"mykey");
                let got = rendezvous_reached(&ctx, json, "mykey", Some(order[0])).await;
                assert_eq!(got, [order[0]]);
            }
            // WeightedRendezvous (the route's "hash"), weights from the policy: a host
            // of weight 0 comes last.
            let weighted = r#"{"tags": ["xxx.0.yy", "xxx.1.yy", "xxx.2.yy"],
                "hash": "WeightedRendezvous",
                "failover_policy": {"type": "RendezvousPolicy", "weights": [1, 0, 1]}}"#;
            for k in 0..20 {
                let key = format!("w{k}");
                let got = rendezvous_reached(&ctx, weighted, &key, Some(1)).await;
                assert_eq!(got, [0, 1, 2], "{key}");
            }
        });
    }

    /// The host that is the primary's own destination is not tried again.
    #[test]
    fn rendezvous_policy_skips_the_primarys_destination() {
        let cfg = r#"{"pools": {"A": {"servers": ["h:1", "h:2", "h:3"]},
                "H0": {"servers": ["h:1"]}, "H1": {"servers": ["h:2"]}, "H2": {"servers": ["h:3"]}},
            "route": {"type": "FailoverRoute", "tags": ["xxx.0.yy", "xxx.1.yy", "xxx.2.yy"],
                "children": ["PoolRoute|A", "PoolRoute|H0", "PoolRoute|H1", "PoolRoute|H2"],
                "failover_policy": {"type": "RendezvousPolicy"}}}"#;
        let c = crate::config::Config::parse(cfg, None, &Default::default()).unwrap();
        let root: RouteRef = c.root.clone();
        let failover = root.children_for(&Mock::req("get x\r\n"))[0].clone();
        let children = failover.children();
        let p = policy(
            r#"{"tags": ["xxx.0.yy", "xxx.1.yy", "xxx.2.yy"],
                "failover_policy": {"type": "RendezvousPolicy"}}"#,
            4,
        )
        .unwrap();
        let mut skipped = [0; 3];
        for k in 0..60 {
            let key = format!("k{k}");
            let req = Mock::req(&format!("get {key}\r\n"));
            let primary = destinations_for(&children[0], &req)[0].addr.clone();
            let mut picker = Picker::new(&p, &children, &req);
            let mut tried = Vec::new();
            while let Some(i) = picker.next(&p, &req) {
                tried.push(i);
            }
            let want: Vec<usize> = Rendezvous::new(&RV_TAGS)
                .rank(key.as_bytes())
                .into_iter()
                .map(|i| i + 1)
                .filter(|&i| destinations_for(&children[i], &req)[0].addr != primary)
                .collect();
            assert_eq!(tried, want, "{key}");
            assert_eq!(tried.len(), 2, "{key}");
            skipped[(1..4).find(|i| !tried.contains(i)).unwrap() - 1] += 1;
        }
        // Ch3 spreads the primaries, so each host is skipped for some key.
        assert!(skipped.iter().all(|&n| n > 0), "{skipped:?}");
    }

    #[test]
    fn rendezvous_policy_config() {
        let e = policy(r#"{"failover_policy": {"type": "RendezvousPolicy"}}"#, 3).unwrap_err();
        assert!(e.contains("route.failover_policy.tags: missing"), "{e}");
        let e = policy(
            r#"{"tags": ["a"], "failover_policy": {"type": "RendezvousPolicy"}}"#,
            3,
        )
        .unwrap_err();
        assert!(
            e.contains("route.tags: RendezvousPolicy: number of tags 1 doesn't match number of failover children 2"),
            "{e}"
        );
        let e = policy(
            r#"{"tags": ["a", "b"], "hash": "WeightedRendezvous",
                "failover_policy": {"type": "RendezvousPolicy"}}"#,
            3,
        )
        .unwrap_err();
        assert!(e.contains("`weights` is required"), "{e}");
        // mcrouter's plain policy ignores weights; one child needs no policy at all.
        let p = policy(
            r#"{"tags": ["a", "b"], "failover_policy": {"type": "RendezvousPolicy",
                "weights": [1, 2]}}"#,
            3,
        )
        .unwrap();
        assert!(matches!(p.order, FailoverOrder::Rendezvous { .. }));
        assert_eq!((p.max_tries, p.max_error_tries), (3, usize::MAX));
        let p = policy(r#"{"failover_policy": {"type": "RendezvousPolicy"}}"#, 1).unwrap();
        assert!(matches!(p.order, FailoverOrder::InOrder));
    }

    /// mcrouter's `limitRetries`: in order, `max_tries` bounds the counted errors.
    #[test]
    fn in_order_max_tries_counts_errors() {
        run(|ctx| async move {
            let p = |json: &str| policy(json, 3).unwrap();
            let (l, mut r) = leaves(&[ErrorClass::RemoteError, ErrorClass::LocalError]);
            let up = Mock::replying("STORED\r\n");
            r.push(up.r());
            let route = FailoverRoute::with_options(
                r.clone(),
                FailoverErrors::default(),
                None,
                p(r#"{"failover_policy": {"type": "InOrderPolicy", "max_tries": 2}}"#),
            );
            let reply = route.route(Mock::req("set k 0 0 1\r\nx\r\n"), &ctx).await;
            assert_eq!(reply.error_class(), Some(ErrorClass::LocalError));
            assert_eq!((l[0].count(), l[1].count(), up.count()), (1, 1, 0));
            let route = FailoverRoute::with_options(
                r.clone(),
                FailoverErrors::default(),
                None,
                p(
                    r#"{"failover_policy": {"type": "FailoverInOrderPolicy", "max_tries": 2,
                       "exclude_errors": ["local_error"]}}"#,
                ),
            );
            let reply = route.route(Mock::req("set k 0 0 1\r\nx\r\n"), &ctx).await;
            assert_eq!(&reply.bytes[..], b"STORED\r\n");
            let route = FailoverRoute::with_options(
                r,
                FailoverErrors::default(),
                None,
                p(r#"{"failover_policy": {"type": "InOrderPolicy", "max_error_tries": 1}}"#),
            );
            let reply = route.route(Mock::req("set k 0 0 1\r\nx\r\n"), &ctx).await;
            assert_eq!(reply.error_class(), Some(ErrorClass::RemoteError));
        });
    }

    #[test]
    fn failover_policy_config() {
        let p = policy("{}", 3).unwrap();
        assert!(matches!(p.order, FailoverOrder::InOrder));
        assert_eq!((p.max_tries, p.max_error_tries), (3, usize::MAX));
        // Clamped like mcrouter: max_tries to the children, max_error_tries to max_tries.
        let p = det(3, 9, 7);
        assert_eq!((p.max_tries, p.max_error_tries), (3, 3));
        let p = policy(
            r#"{"hash": {"hash_func": "WeightedCh3", "weights": [1, 0.5, 0.1]},
                "failover_policy": {"type": "DeterministicOrderPolicy", "max_tries": 2,
                                    "max_error_tries": 1, "hash": {"hash_func": "Ch3"}}}"#,
            3,
        )
        .unwrap();
        assert!(matches!(
            p.order,
            FailoverOrder::Deterministic {
                func: HashFunc::WeightedCh3(_),
                ..
            }
        ));
        let err = |json: &str| policy(json, 3).unwrap_err();
        let e = err(r#"{"failover_policy": {"type": "RandomPolicy"}}"#);
        assert!(
            e.contains("route.failover_policy.type: unknown failover policy \"RandomPolicy\""),
            "{e}"
        );
        assert!(e.contains("DeterministicOrderPolicy"), "{e}");
        assert!(e.contains("RendezvousPolicy"), "{e}");
        let e = err(r#"{"failover_policy": {"type": "LeastFailuresPolicy"}}"#);
        assert!(
            e.contains("route.failover_policy.max_tries: missing"),
            "{e}"
        );
        let e = err(r#"{"failover_policy": {"max_tries": 2}}"#);
        assert!(e.contains("route.failover_policy.type: missing"), "{e}");
        let e = err(r#"{"failover_policy": "DeterministicOrderPolicy"}"#);
        assert!(
            e.contains("route.failover_policy: expected an object"),
            "{e}"
        );
        let e = err(r#"{"failover_policy": {"type": "DeterministicOrderPolicy", "max_tries": 2}}"#);
        assert!(
            e.contains("route.failover_policy.max_error_tries: missing"),
            "{e}"
        );
        let e = err(
            r#"{"failover_policy": {"type": "DeterministicOrderPolicy", "max_tries": 0,
                "max_error_tries": 1}}"#,
        );
        assert!(
            e.contains("route.failover_policy.max_tries: expected a whole number"),
            "{e}"
        );
        let e = err(
            r#"{"failover_policy": {"type": "DeterministicOrderPolicy", "max_tries": 2,
                "max_error_tries": 1, "hash": {"hash_func": "Crc32"}}}"#,
        );
        assert!(e.contains("route.failover_policy.hash.hash_func"), "{e}");
        let e =
            err(r#"{"failover_policy": {"type": "InOrderPolicy", "exclude_errors": ["nope"]}}"#);
        assert!(
            e.contains("route.failover_policy.exclude_errors[0]: unknown error"),
            "{e}"
        );
    }
}
