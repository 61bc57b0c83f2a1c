//! High availability (`pilum scale serve --ha redis://…`): several replicas share one Redis;
//! every replica accepts webhooks, one leader decides and applies.
//!
//! Keys (prefix `pilum:scale:`):
//!
//! | key | what |
//! |---|---|
//! | `leader` | the lease: `"<token> <id>"`, set with a TTL (`--ha-lease`), renewed at a third of it |
//! | `fence` | the fencing-token counter (`INCR` at each takeover) |
//! | `seq` | the signal sequence counter (one order for every replica's accepts) |
//! | `signals` | the stream of accepted changes (`seq`, `pool`, `change`), trimmed to ~100,000 |
//! | `audit` | the audit stream: every replica's audit records, with the leader's `fence` |
//! | `records` | a hash: pool → the leader's desired-state record (with its `fence`) |
//! | `dedupe:<kind>:<key>` | `Idempotency-Key`s and SNS `MessageId`s, with a TTL |
//!
//! Every replica tails `signals` into its own books, so a webhook to any replica counts once
//! and a new leader already holds every accepted signal; the records (written by the leader,
//! read by the followers at each lease round) say which intents were consumed. A leader is
//! a leader only while its last renewal is younger than the TTL by its own monotonic clock
//! (a process stopped past its TTL knows it lost the lease before it does anything else), and
//! every apply is preceded by a check that the lease in Redis still holds its token.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde_json::{Value, json};
use tokio::time::Instant;

use std::sync::Arc;

use crate::autoscale::audit::Mirror;
use crate::autoscale::decide::Record;
use crate::autoscale::log::Log;
use crate::autoscale::metrics::PoolLabel;
use crate::autoscale::scaler::{Scaler, lock};
use crate::autoscale::signal::Change;

const PREFIX: &str = "pilum:scale:";
/// The approximate length the streams are trimmed to.
const STREAM_MAX: u64 = 100_000;
/// How long a dedupe key is kept (SNS retries and `Idempotency-Key` reuse within a day).
pub(crate) const DEDUPE_TTL: Duration = Duration::from_secs(24 * 3600);

/// `--ha` and its companions.
#[derive(Debug, Clone)]
pub(crate) struct HaSettings {
    pub url: String,
    /// This replica's identity (`--ha-id`, default `<host>:<pid>`).
    pub id: String,
    /// The lease TTL (`--ha-lease`).
    pub lease: Duration,
}

fn key(name: &str) -> String {
    format!("{PREFIX}{name}")
}

/// The URL with any password replaced, for messages.
pub(crate) fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((_, host)) => format!("{scheme}://***@{host}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

const ACQUIRE: &str = r"
local v = redis.call('GET', KEYS[1])
if v then return {0, v, redis.call('PTTL', KEYS[1])} end
local t = redis.call('INCR', KEYS[2])
local floor = tonumber(ARGV[3])
if t <= floor then t = floor + 1; redis.call('SET', KEYS[2], t) end
local mine = t .. ' ' .. ARGV[1]
redis.call('SET', KEYS[1], mine, 'PX', ARGV[2])
return {1, mine, tonumber(ARGV[2])}
";

const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
";

const HOLDS: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return 1 end
return 0
";

const FENCED_HSET: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
return 1
";

const RESIGN: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]); return 1 end
return 0
";

const PUBLISH: &str = r"
local s = redis.call('INCR', KEYS[1])
local floor = tonumber(ARGV[1])
if s <= floor then s = floor + 1; redis.call('SET', KEYS[1], s) end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'seq', s, 'pool', ARGV[2], 'change', ARGV[3])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', 'seq', s, 'record', ARGV[5])
return s
";

/// This replica's view of the lease.
#[derive(Debug, Default)]
struct Lease {
    /// Our lease value (`<token> <id>`) and token, while we hold it.
    mine: Option<(String, u64)>,
    /// When the command that last took or renewed our lease was sent.
    renewed: Option<Instant>,
    /// The leader's identity as last read, and its lease's age then.
    leader: Option<String>,
    age: Option<Duration>,
    /// The last Redis error, until a round succeeds.
    error: Option<String>,
}

/// What a lease round found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Round {
    /// We hold the lease (newly: `gained`).
    Leading { gained: bool },
    /// Someone else does, or Redis is unreachable (`lost`: we held it until now).
    Following { lost: bool },
}

/// The shared state's client.
pub(crate) struct Ha {
    con: ConnectionManager,
    /// A connection of its own for the blocking stream reads, and the last stream id read.
    tail: tokio::sync::Mutex<(ConnectionManager, String)>,
    pub id: String,
    pub ttl: Duration,
    lease: Mutex<Lease>,
    /// The highest signal sequence number seen: the floor of the next one (after a Redis
    /// restart lost the counter, numbers keep growing).
    max_seq: AtomicU64,
    /// The highest fencing token seen, likewise.
    max_fence: AtomicU64,
    /// Set after a Redis error: the next tail read checks whether the stream was reset.
    suspect: std::sync::atomic::AtomicBool,
    pub url: String,
}

impl std::fmt::Debug for Ha {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ha").field("id", &self.id).field("url", &self.url).finish_non_exhaustive()
    }
}

fn err(e: redis::RedisError) -> String {
    e.to_string()
}

impl Ha {
    /// Connect (both connections reconnect by themselves later).
    pub(crate) async fn connect(s: &HaSettings) -> Result<Self, String> {
        let url = redact(&s.url);
        let client = redis::Client::open(s.url.as_str()).map_err(|e| {
            format!("`--ha {url}`: {e}\nhelp: use `redis://host:6379/0` or `rediss://…`")
        })?;
        let timeout = (s.lease / 3).max(Duration::from_millis(200));
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let tail_config = config.clone().set_response_timeout(Some(Duration::from_secs(5)));
        let connect = |c| client.get_connection_manager_with_config(c);
        let con = connect(config)
            .await
            .map_err(|e| format!("cannot reach Redis at `{url}`: {e}\nhelp: is it running?"))?;
        let tail = connect(tail_config)
            .await
            .map_err(|e| format!("cannot reach Redis at `{url}`: {e}\nhelp: is it running?"))?;
        Ok(Self {
            con,
            tail: tokio::sync::Mutex::new((tail, "0-0".into())),
            id: s.id.clone(),
            ttl: s.lease,
            lease: Mutex::new(Lease::default()),
            max_seq: AtomicU64::new(0),
            max_fence: AtomicU64::new(0),
            suspect: std::sync::atomic::AtomicBool::new(false),
            url,
        })
    }

    /// Whether this replica leads now: it holds the lease and renewed it less than the TTL ago
    /// (by its own clock, with a tenth of the TTL to spare).
    pub(crate) fn leading(&self) -> bool {
        let l = lock(&self.lease);
        l.mine.is_some() && l.renewed.is_some_and(|t| t.elapsed() < self.ttl.mul_f64(0.9))
    }

    /// Our fencing token while we lead.
    pub(crate) fn token(&self) -> Option<u64> {
        if !self.leading() {
            return None;
        }
        lock(&self.lease).mine.as_ref().map(|(_, t)| *t)
    }

    /// Before an apply: we lead by our clock, and Redis still holds our lease.
    pub(crate) async fn confirm(&self) -> Result<u64, String> {
        let mine = {
            let l = lock(&self.lease);
            l.mine.clone()
        };
        let Some((value, token)) = mine.filter(|_| self.leading()) else {
            return Err("this replica does not hold the lease".into());
        };
        let held: i64 = redis::Script::new(HOLDS)
            .key(key("leader"))
            .arg(&value)
            .invoke_async(&mut self.con.clone())
            .await
            .map_err(err)?;
        if held == 1 { Ok(token) } else { Err(format!("the lease moved (token {token} is stale)")) }
    }

    /// One lease round: renew ours, or try to take a free one.
    pub(crate) async fn round(&self) -> Round {
        let was = lock(&self.lease).mine.is_some();
        let mine = lock(&self.lease).mine.clone();
        let sent = Instant::now();
        let ttl_ms = self.ttl.as_millis().to_string();
        let mut con = self.con.clone();
        let result: Result<Round, String> = async {
            if let Some((value, _)) = &mine {
                let renewed: i64 = redis::Script::new(RENEW)
                    .key(key("leader"))
                    .arg(value)
                    .arg(&ttl_ms)
                    .invoke_async(&mut con)
                    .await
                    .map_err(err)?;
                if renewed == 1 {
                    let mut l = lock(&self.lease);
                    l.renewed = Some(sent);
                    l.leader = Some(self.id.clone());
                    l.age = Some(Duration::ZERO);
                    return Ok(Round::Leading { gained: !was });
                }
                lock(&self.lease).mine = None;
            }
            let (took, value, pttl): (i64, String, i64) = redis::Script::new(ACQUIRE)
                .key(key("leader"))
                .key(key("fence"))
                .arg(&self.id)
                .arg(&ttl_ms)
                .arg(self.max_fence.load(Ordering::Relaxed))
                .invoke_async(&mut con)
                .await
                .map_err(err)?;
            let (token, id) = value.split_once(' ').unwrap_or(("0", value.as_str()));
            let token: u64 = token.parse().unwrap_or(0);
            self.max_fence.fetch_max(token, Ordering::Relaxed);
            let mut l = lock(&self.lease);
            l.leader = Some(id.to_string());
            let left = Duration::from_millis(u64::try_from(pttl.max(0)).unwrap_or(0));
            l.age = Some(self.ttl.saturating_sub(left));
            if took == 1 {
                l.mine = Some((value.clone(), token));
                l.renewed = Some(sent);
                return Ok(Round::Leading { gained: true });
            }
            Ok(Round::Following { lost: was })
        }
        .await;
        match result {
            Ok(r) => {
                lock(&self.lease).error = None;
                r
            }
            Err(e) => {
                self.suspect.store(true, Ordering::Relaxed);
                let mut l = lock(&self.lease);
                l.error = Some(e);
                // Our clock decides: still leading until the TTL runs out.
                if was && self.leading_locked(&l) {
                    return Round::Leading { gained: false };
                }
                l.mine = None;
                Round::Following { lost: was }
            }
        }
    }

    fn leading_locked(&self, l: &Lease) -> bool {
        l.mine.is_some() && l.renewed.is_some_and(|t| t.elapsed() < self.ttl.mul_f64(0.9))
    }

    /// Give the lease up (at shutdown), so another replica takes over at once.
    pub(crate) async fn resign(&self) {
        let mine = lock(&self.lease).mine.take();
        if let Some((value, _)) = mine {
            let _: Result<i64, _> = redis::Script::new(RESIGN)
                .key(key("leader"))
                .arg(value)
                .invoke_async(&mut self.con.clone())
                .await;
        }
    }

    /// The role, the leader's identity, the lease's age and token, for `/readyz` and `/pools`.
    pub(crate) fn role(&self) -> Value {
        let leading = self.leading();
        let l = lock(&self.lease);
        json!({
            "role": if leading { "leader" } else { "follower" },
            "id": self.id,
            "leader": l.leader,
            "leaseAgeMs": l.age.map(|a| u64::try_from(a.as_millis()).unwrap_or(u64::MAX)),
            "leaseTtlMs": u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX),
            "token": if leading { l.mine.as_ref().map(|(_, t)| *t) } else { None },
            "redis": self.url,
            "error": l.error,
        })
    }

    /// The last Redis error, while it lasts.
    pub(crate) fn error(&self) -> Option<String> {
        lock(&self.lease).error.clone()
    }

    /// Accept a change: one sequence number for every replica, the change on `signals`, its
    /// audit record on `audit`. A 2xx follows only this.
    pub(crate) async fn publish(
        &self,
        pool: &str,
        change: &Change,
        record: &Value,
    ) -> Result<u64, String> {
        let change = serde_json::to_string(change).map_err(|e| e.to_string())?;
        let seq: u64 = redis::Script::new(PUBLISH)
            .key(key("seq"))
            .key(key("signals"))
            .key(key("audit"))
            .arg(self.max_seq.load(Ordering::Relaxed))
            .arg(pool)
            .arg(change)
            .arg(STREAM_MAX)
            .arg(record.to_string())
            .invoke_async(&mut self.con.clone())
            .await
            .inspect_err(|_| self.suspect.store(true, Ordering::Relaxed))
            .map_err(err)?;
        self.max_seq.fetch_max(seq, Ordering::Relaxed);
        Ok(seq)
    }

    /// A dedupe key: true when it is new (set now, with `DEDUPE_TTL`), false when it was seen.
    /// `value` is kept with it; `seen` returns the first value for a key that was seen.
    pub(crate) async fn first(
        &self,
        kind: &str,
        id: &str,
        value: &str,
    ) -> Result<Result<(), String>, String> {
        let k = key(&format!("dedupe:{kind}:{id}"));
        let mut con = self.con.clone();
        let set: Option<String> = redis::cmd("SET")
            .arg(&k)
            .arg(value)
            .arg("NX")
            .arg("PX")
            .arg(u64::try_from(DEDUPE_TTL.as_millis()).unwrap_or(u64::MAX))
            .query_async(&mut con)
            .await
            .map_err(err)?;
        if set.is_some() {
            return Ok(Ok(()));
        }
        let old: Option<String> =
            redis::cmd("GET").arg(&k).query_async(&mut con).await.map_err(err)?;
        Ok(Err(old.unwrap_or_default()))
    }

    /// Forget a dedupe key whose request was not accepted after all.
    pub(crate) async fn forget(&self, kind: &str, id: &str) {
        let k = key(&format!("dedupe:{kind}:{id}"));
        let _: Result<i64, _> = redis::cmd("DEL").arg(k).query_async(&mut self.con.clone()).await;
    }

    /// Read what is new on `signals` (waiting up to `block` for something) and hand each entry
    /// to `ingest`, in order. Returns how many were read.
    pub(crate) async fn tail(
        &self,
        block: Option<Duration>,
        ingest: &(dyn Fn(&str, u64, Change) + Sync),
    ) -> Result<usize, String> {
        let mut guard = self.tail.lock().await;
        let (con, last) = &mut *guard;
        if self.suspect.swap(false, Ordering::Relaxed) && last.as_str() != "0-0" {
            // Redis may have restarted empty: a stream whose newest id is older than ours
            // starts again from its beginning.
            let newest: redis::streams::StreamRangeReply = redis::cmd("XREVRANGE")
                .arg(key("signals"))
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1)
                .query_async(con)
                .await
                .inspect_err(|_| self.suspect.store(true, Ordering::Relaxed))
                .map_err(err)?;
            let behind = newest.ids.first().is_none_or(|e| id_lt(&e.id, last));
            if behind {
                *last = "0-0".into();
            }
        }
        let mut cmd = redis::cmd("XREAD");
        cmd.arg("COUNT").arg(1000);
        if let Some(b) = block {
            cmd.arg("BLOCK").arg(u64::try_from(b.as_millis()).unwrap_or(1000));
        }
        cmd.arg("STREAMS").arg(key("signals")).arg(last.as_str());
        let reply: Option<redis::streams::StreamReadReply> = cmd
            .query_async(con)
            .await
            .inspect_err(|_| self.suspect.store(true, Ordering::Relaxed))
            .map_err(err)?;
        let mut n = 0;
        for entry in reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids) {
            *last = entry.id.clone();
            n += 1;
            let (Some(seq), Some(pool), Some(change)) = (
                entry.get::<u64>("seq"),
                entry.get::<String>("pool"),
                entry.get::<String>("change"),
            ) else {
                continue;
            };
            let Ok(mut change) = serde_json::from_str::<Change>(&change) else { continue };
            change.set_seq(seq);
            self.max_seq.fetch_max(seq, Ordering::Relaxed);
            ingest(&pool, seq, change);
        }
        Ok(n)
    }

    /// Read everything on `signals` up to now.
    pub(crate) async fn catch_up(
        &self,
        ingest: &(dyn Fn(&str, u64, Change) + Sync),
    ) -> Result<(), String> {
        for _ in 0..1000 {
            if self.tail(None, ingest).await? == 0 {
                return Ok(());
            }
        }
        Err("the signal stream did not end after 1,000 reads".into())
    }

    /// The leader's records.
    pub(crate) async fn records(&self) -> Result<Vec<Record>, String> {
        let all: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(key("records"))
            .query_async(&mut self.con.clone())
            .await
            .map_err(err)?;
        let records: Vec<Record> =
            all.values().filter_map(|v| serde_json::from_str::<Record>(v).ok()).collect();
        for r in &records {
            self.max_fence.fetch_max(r.fence, Ordering::Relaxed);
            self.max_seq.fetch_max(r.signals_seq, Ordering::Relaxed);
        }
        Ok(records)
    }

    /// Write a record (the leader only, fenced: refused once the lease moved; it carries the
    /// leader's token).
    pub(crate) async fn save_record(&self, record: &Record) -> Result<(), String> {
        let text = serde_json::to_string(record).map_err(|e| e.to_string())?;
        let Some((value, _)) = lock(&self.lease).mine.clone() else {
            return Err("this replica does not hold the lease".into());
        };
        let written: i64 = redis::Script::new(FENCED_HSET)
            .key(key("leader"))
            .key(key("records"))
            .arg(value)
            .arg(&record.pool)
            .arg(text)
            .invoke_async(&mut self.con.clone())
            .await
            .map_err(err)?;
        if written == 1 { Ok(()) } else { Err("the lease moved: not written".into()) }
    }

    /// Append audit records to the shared stream.
    pub(crate) async fn audit(&self, records: &[Value]) -> Result<(), String> {
        let mut pipe = redis::pipe();
        for r in records {
            pipe.cmd("XADD")
                .arg(key("audit"))
                .arg("MAXLEN")
                .arg("~")
                .arg(STREAM_MAX)
                .arg("*")
                .arg("record")
                .arg(r.to_string())
                .ignore();
        }
        pipe.query_async::<()>(&mut self.con.clone()).await.map_err(err)
    }
}

/// Audit records waiting for the shared stream; more are dropped (the local log has them).
const AUDIT_QUEUE: usize = 10_000;

impl Scaler {
    /// The lease rounds (every third of the TTL): take over, follow, or step down. Also starts
    /// the audit copy. Resigns at shutdown so another replica takes over at once.
    pub(crate) async fn lease_loop(self: Arc<Self>) {
        let Some(ha) = self.ha.clone() else { return };
        let (tx, rx) = tokio::sync::mpsc::channel::<Value>(AUDIT_QUEUE);
        let copier = ha.clone();
        tokio::spawn(copy_audit(copier, rx, self.log));
        let mirror = ha.clone();
        self.audit.mirror(Mirror(Box::new(move |record: &mut Value| {
            if let Some(obj) = record.as_object_mut() {
                obj.insert("replica".into(), mirror.id.clone().into());
                if let Some(t) = mirror.token() {
                    obj.insert("fence".into(), t.into());
                }
            }
            let _ = tx.try_send(record.clone());
        })));
        let every = ha.ttl / 3;
        loop {
            match ha.round().await {
                Round::Leading { gained: true } => self.took_over(&ha).await,
                Round::Leading { gained: false } => {}
                Round::Following { lost } => {
                    if lost {
                        self.stepped_down(&ha);
                    }
                    self.follow(&ha).await;
                }
            }
            self.metrics.leader.set(i64::from(ha.leading()));
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = self.stopped() => break,
            }
        }
        ha.resign().await;
        self.metrics.leader.set(0);
    }

    /// Tail the shared signal stream into the books, on every replica.
    pub(crate) async fn tail_loop(self: Arc<Self>) {
        let Some(ha) = self.ha.clone() else { return };
        let mut failing = false;
        loop {
            let me = self.clone();
            let ingest = move |pool: &str, seq: u64, change: Change| me.ingest(pool, seq, change);
            tokio::select! {
                r = ha.tail(Some(Duration::from_secs(1)), &ingest) => match r {
                    Ok(_) => failing = false,
                    Err(e) => {
                        if !failing {
                            self.log.warn("cannot read the shared signals; retrying", &[("error", &e)]);
                        }
                        failing = true;
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                            _ = self.stopped() => return,
                        }
                    }
                },
                _ = self.stopped() => return,
            }
        }
    }

    /// This replica took the lease: read every signal and the records, then decide what is
    /// pending and re-apply what is behind.
    async fn took_over(&self, ha: &Ha) {
        let ingest = |pool: &str, seq: u64, change: Change| self.ingest(pool, seq, change);
        if let Err(e) = ha.catch_up(&ingest).await {
            self.log.warn("cannot read the shared signals at takeover", &[("error", &e)]);
        }
        self.follow(ha).await;
        let token = ha.token().unwrap_or(0);
        self.metrics.leader_changes.inc();
        self.log.info("leading", &[("replica", &ha.id), ("token", &token.to_string())]);
        self.audit.write("leader", json!({"replica": ha.id, "role": "leader", "token": token}));
        self.notify(
            crate::notify::Kind::LeaderChanged,
            "*",
            format!("replica `{}` leads the scaler (token {token})", ha.id),
            json!({"leader": ha.id, "token": token}),
        );
        for st in self.states.values() {
            st.wake.notify_one();
        }
        for lane in self.lanes.values() {
            lane.wake.notify_one();
        }
    }

    fn stepped_down(&self, ha: &Ha) {
        self.metrics.leader_changes.inc();
        self.log.warn("lost the lease: following", &[("replica", &ha.id)]);
        self.audit.write("leader", json!({"replica": ha.id, "role": "follower"}));
    }

    /// Take the leader's records (what was decided, applied and consumed).
    async fn follow(&self, ha: &Ha) {
        let records = match ha.records().await {
            Ok(r) => r,
            Err(e) => {
                self.log.warn("cannot read the shared records", &[("error", &e)]);
                return;
            }
        };
        for r in records {
            let Some(st) = self.states.get(&r.pool) else { continue };
            let mut inner = lock(&st.inner);
            if r.generation < inner.record.generation && r.fence <= inner.record.fence {
                continue;
            }
            inner.book.forget_consumed(r.signals_seq);
            let label = PoolLabel { pool: r.pool.clone() };
            self.metrics.desired.get_or_create(&label).set(r.desired);
            if let Some(a) = r.applied {
                self.metrics.applied.get_or_create(&label).set(a);
            }
            inner.unknown = None;
            inner.record = r;
        }
    }
}

/// Copy audit records to the shared stream in batches (a failed batch is logged once per
/// outage and dropped: the local audit log has it).
async fn copy_audit(ha: Arc<Ha>, mut rx: tokio::sync::mpsc::Receiver<Value>, log: Log) {
    let mut batch = Vec::new();
    let mut failing = false;
    while rx.recv_many(&mut batch, 256).await > 0 {
        match ha.audit(&batch).await {
            Ok(()) => failing = false,
            Err(e) if !failing => {
                failing = true;
                let n = batch.len().to_string();
                log.warn("cannot copy audit records to Redis", &[("error", &e), ("records", &n)]);
            }
            Err(_) => {}
        }
        batch.clear();
    }
}

/// Whether stream id `a` is older than `b` (`<ms>-<n>`).
fn id_lt(a: &str, b: &str) -> bool {
    let parse = |s: &str| {
        let (ms, n) = s.split_once('-').unwrap_or((s, "0"));
        (ms.parse::<u64>().unwrap_or(0), n.parse::<u64>().unwrap_or(0))
    };
    parse(a) < parse(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_compare_by_time_then_number() {
        assert!(id_lt("5-0", "10-0"));
        assert!(id_lt("10-1", "10-2"));
        assert!(!id_lt("10-2", "10-2"));
    }

    #[test]
    fn a_password_never_shows() {
        assert_eq!(redact("redis://:hunter2@db:6379/0"), "redis://***@db:6379/0");
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }
}
