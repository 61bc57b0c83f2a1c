//! The Redis backend, shared by every clone and CI runner that names the same URL. Every key
//! starts with the URL's namespace (`pilum` unless `?namespace=` says otherwise):
//!
//! | key | holds |
//! |---|---|
//! | `NS:deploys`, `NS:deploys:SERVICE` | deploy records, streams (`XADD … MAXLEN ~`), read with `XREVRANGE` |
//! | `NS:runs` | the run history, a stream |
//! | `NS:artefact:SERVICE+TARGET+HASH`, `NS:live:SERVICE+ENV+TARGET` | cache entries (JSON) |
//! | `NS:lock:KEY` | a lease: the holder's JSON, `PX` TTL |
//! | `NS:fence:KEY` | the key's fencing token, `INCR`ed by every grant |
//! | `NS:queue:KEY`, `NS:ticket:TOKEN`, `NS:waiter:TOKEN`, `NS:tickets` | the FIFO queue: waiters by ticket; a waiter whose lease lapsed leaves it |
//! | `NS:barrier:RUN:PHASE`, `NS:barrier:RUN:started`, `NS:barrier:RUN:alive:N` | shard barriers |
//!
//! Locks are taken, renewed and released by Lua scripts, so each call is atomic over all its
//! keys; release compares the holder before deleting. The client is the `redis` crate's
//! synchronous connection, reconnected after an I/O error, with connect and read timeouts so a
//! stalled server fails a call instead of hanging the run.

use std::sync::Mutex;
use std::time::Duration;

use redis::Value;

use super::barrier::{self, Shard};
use super::cache::{Artefact, ArtefactKey, Live, LiveKey};
use super::location::RedisUrl;
use super::lock::{Held, Holder, LockKey, Try};
use super::record::{Filter, Page, redacted};
use super::{Backend, Batch, Location, Runs, StateError};
use crate::sync::LockExt;

/// How many deploy records the stream of all services keeps (approximately).
pub(crate) const MAX_RECORDS: usize = 100_000;
/// How many each service's own stream keeps.
pub(crate) const MAX_SERVICE_RECORDS: usize = 10_000;
/// How many run-history entries are kept.
pub(crate) const MAX_RUNS: usize = 10_000;
/// How long cache entries and barriers are kept.
const CACHE_TTL_SECS: u64 = 90 * 24 * 3600;
const BARRIER_TTL_SECS: u64 = 24 * 3600;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Stream entries read per `XREVRANGE`.
const PAGE: usize = 200;

const TRY: &str = r#"
local ns, me, token, ttl, queue = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5] == '1'
local ticket = redis.call('GET', ns .. ':ticket:' .. token)
local mine = ticket and tonumber(ticket) or nil
local out = {}
for i = 6, #ARGV do
  local k = ARGV[i]
  local lk, qk, fk = ns .. ':lock:' .. k, ns .. ':queue:' .. k, ns .. ':fence:' .. k
  local cur = redis.call('GET', lk)
  if cur == me then
    out[#out + 1] = {1, tonumber(redis.call('GET', fk) or '0')}
  else
    local ahead = 0
    local q = redis.call('ZRANGE', qk, 0, -1, 'WITHSCORES')
    for j = 1, #q, 2 do
      local w, s = q[j], tonumber(q[j + 1])
      if w ~= token then
        if redis.call('EXISTS', ns .. ':waiter:' .. w) == 0 then
          redis.call('ZREM', qk, w)
        elseif mine == nil or s < mine then
          ahead = ahead + 1
        end
      end
    end
    if (not cur) and ahead == 0 then
      redis.call('SET', lk, me, 'PX', ttl)
      local fence = redis.call('INCR', fk)
      redis.call('ZREM', qk, token)
      out[#out + 1] = {1, fence}
    else
      if queue then
        if mine == nil then
          mine = redis.call('INCR', ns .. ':tickets')
          redis.call('SET', ns .. ':ticket:' .. token, mine, 'PX', ttl)
        end
        redis.call('ZADD', qk, 'NX', mine, token)
        redis.call('SET', ns .. ':waiter:' .. token, '1', 'PX', ttl)
      end
      out[#out + 1] = {0, cur or '', ahead}
    end
  end
end
return out
"#;

const RENEW: &str = r#"
local ns, me, token, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local out = {}
for i = 5, #ARGV do
  local lk = ns .. ':lock:' .. ARGV[i]
  if redis.call('GET', lk) == me then
    redis.call('PEXPIRE', lk, ttl)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
if redis.call('EXISTS', ns .. ':waiter:' .. token) == 1 then
  redis.call('PEXPIRE', ns .. ':waiter:' .. token, ttl)
  redis.call('PEXPIRE', ns .. ':ticket:' .. token, ttl)
end
return out
"#;

const RELEASE: &str = r#"
local ns, me = ARGV[1], ARGV[2]
for i = 3, #ARGV do
  local lk = ns .. ':lock:' .. ARGV[i]
  if redis.call('GET', lk) == me then redis.call('DEL', lk) end
end
return 1
"#;

pub(crate) struct RedisBackend {
    location: Location,
    url: RedisUrl,
    client: redis::Client,
    con: Mutex<Option<redis::Connection>>,
    try_script: redis::Script,
    renew_script: redis::Script,
    release_script: redis::Script,
}

impl RedisBackend {
    /// Connect and `PING`: an unreachable server is [`StateError::Unreachable`].
    pub(crate) fn connect(location: &Location, url: &RedisUrl) -> Result<RedisBackend, StateError> {
        let unreachable = |e: &dyn std::fmt::Display| StateError::Unreachable {
            location: url.shown.clone(),
            why: redacted(&e.to_string()),
        };
        let client = redis::Client::open(url.connect.as_str()).map_err(|e| unreachable(&e))?;
        let b = RedisBackend {
            location: location.clone(),
            url: url.clone(),
            client,
            con: Mutex::new(None),
            try_script: redis::Script::new(TRY),
            renew_script: redis::Script::new(RENEW),
            release_script: redis::Script::new(RELEASE),
        };
        let mut con = b.open().map_err(|e| unreachable(&e))?;
        redis::cmd("PING").query::<String>(&mut con).map_err(|e| unreachable(&e))?;
        *b.con.locked() = Some(con);
        Ok(b)
    }

    fn open(&self) -> redis::RedisResult<redis::Connection> {
        let con = self.client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
        con.set_read_timeout(Some(IO_TIMEOUT))?;
        con.set_write_timeout(Some(IO_TIMEOUT))?;
        Ok(con)
    }

    fn key(&self, rest: &str) -> String {
        format!("{}:{rest}", self.url.namespace)
    }

    /// Run `f` on the connection, opening it first when needed; a connection that failed is
    /// dropped so the next call opens a new one. One retry after a dropped connection.
    fn with<T>(
        &self,
        what: &str,
        mut f: impl FnMut(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, StateError> {
        let mut slot = self.con.locked();
        let mut last = None;
        for _ in 0..2 {
            let con = match slot.as_mut() {
                Some(c) => c,
                None => match self.open() {
                    Ok(c) => slot.insert(c),
                    Err(e) => {
                        last = Some(e);
                        break;
                    }
                },
            };
            match f(con) {
                Ok(v) => return Ok(v),
                Err(e) => {
                    let broken = e.is_io_error() || e.is_connection_dropped() || e.is_timeout();
                    if !broken {
                        return Err(self.failed(what, &e));
                    }
                    *slot = None;
                    last = Some(e);
                }
            }
        }
        let e = last.expect("the loop ran and failed");
        Err(self.failed(what, &e))
    }

    fn failed(&self, what: &str, e: &redis::RedisError) -> StateError {
        StateError::Failed {
            location: self.url.shown.clone(),
            what: what.to_string(),
            why: redacted(&e.to_string()),
        }
    }

    /// Entries of `stream` newest first, parsed, until `keep` has accepted `limit` (0: all).
    fn read_stream(
        &self,
        stream: &str,
        limit: usize,
        keep: &mut dyn FnMut(serde_json::Value) -> bool,
    ) -> Result<usize, StateError> {
        let key = self.key(stream);
        let mut end = "+".to_string();
        let (mut kept, mut bad) = (0, 0);
        loop {
            let page: Value = self.with("read the deploy records", |c| {
                redis::cmd("XREVRANGE").arg(&key).arg(&end).arg("-").arg("COUNT").arg(PAGE).query(c)
            })?;
            let entries = array(page);
            let n = entries.len();
            for e in entries {
                let mut parts = array(e).into_iter();
                let (Some(id), Some(fields)) = (parts.next(), parts.next()) else {
                    bad += 1;
                    continue;
                };
                end = format!("({}", text(id));
                let fields = array(fields);
                let value = fields
                    .chunks(2)
                    .find(|kv| kv.len() == 2 && text(kv[0].clone()) == "r")
                    .and_then(|kv| {
                        serde_json::from_str::<serde_json::Value>(&text(kv[1].clone())).ok()
                    })
                    .filter(serde_json::Value::is_object);
                match value {
                    Some(v) => {
                        if keep(v) {
                            kept += 1;
                            if limit > 0 && kept >= limit {
                                return Ok(bad);
                            }
                        }
                    }
                    None => bad += 1,
                }
            }
            if n < PAGE {
                return Ok(bad);
            }
        }
    }

    fn lock_args(&self, me: &Holder, keys: &[LockKey]) -> Vec<String> {
        let mut args = vec![self.url.namespace.clone(), me.encode(), me.token.clone()];
        args.extend(keys.iter().map(LockKey::to_string));
        args
    }

    /// The cache entries of `keys` under `NS:kind:…` (one `MGET`): missing or unreadable ones,
    /// and one whose content names another key, are `None`.
    fn entries<K: PartialEq, T: serde::de::DeserializeOwned>(
        &self,
        kind: &str,
        keys: &[K],
        name: impl Fn(&K) -> String,
        key: impl Fn(&T) -> K,
    ) -> Result<Vec<Option<T>>, StateError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let names: Vec<String> =
            keys.iter().map(|k| self.key(&format!("{kind}:{}", name(k)))).collect();
        let found: Vec<Option<String>> =
            self.with("read the build cache", |c| redis::cmd("MGET").arg(&names).query(c))?;
        Ok(found
            .into_iter()
            .zip(keys)
            .map(|(v, k)| {
                v.and_then(|t| serde_json::from_str::<T>(&t).ok()).filter(|t| key(t) == *k)
            })
            .collect())
    }

    fn scan(&self, pattern: &str) -> Result<Vec<String>, StateError> {
        let pattern = self.key(pattern);
        let mut cursor = 0u64;
        let mut out = Vec::new();
        // Bounded: SCAN visits every key once per full pass.
        for _ in 0..100_000 {
            let (next, keys): (u64, Vec<String>) = self.with("list the locks", |c| {
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query(c)
            })?;
            out.extend(keys);
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }
}

fn array(v: Value) -> Vec<Value> {
    match v {
        Value::Array(a) | Value::Set(a) => a,
        _ => Vec::new(),
    }
}

fn text(v: Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(&b).into_owned(),
        Value::SimpleString(s) => s,
        Value::Int(i) => i.to_string(),
        _ => String::new(),
    }
}

fn int(v: &Value) -> u64 {
    match v {
        Value::Int(i) => (*i).max(0) as u64,
        Value::BulkString(b) => String::from_utf8_lossy(b).parse().unwrap_or(0),
        _ => 0,
    }
}

fn ms(ttl: Duration) -> u64 {
    (ttl.as_millis() as u64).max(1)
}

impl Backend for RedisBackend {
    fn location(&self) -> &Location {
        &self.location
    }

    fn leases_expire(&self) -> bool {
        true
    }

    fn records(&self, filter: &Filter) -> Result<Page, StateError> {
        let stream = match filter.single_service() {
            Some(s) => format!("deploys:{s}"),
            None => "deploys".to_string(),
        };
        let mut page = Page::default();
        let bad = self.read_stream(&stream, filter.limit, &mut |v| page.take(filter, v))?;
        page.unreadable += bad;
        Ok(page)
    }

    fn runs(
        &self,
        limit: usize,
        keep: &dyn Fn(&serde_json::Value) -> bool,
    ) -> Result<Runs, StateError> {
        let mut runs = Vec::new();
        let bad = self.read_stream("runs", limit, &mut |v| {
            if keep(&v) {
                runs.push(v);
                true
            } else {
                false
            }
        })?;
        let unreadable = if bad > 0 { vec![format!("{bad} entries")] } else { Vec::new() };
        Ok(Runs { runs, unreadable })
    }

    fn write(&self, batch: &Batch) -> Result<(), StateError> {
        let mut p = redis::pipe();
        p.atomic();
        for r in &batch.records {
            let json = serde_json::to_string(r).expect("a record serialises");
            for (stream, max) in [
                (self.key("deploys"), MAX_RECORDS),
                (self.key(&format!("deploys:{}", r.service)), MAX_SERVICE_RECORDS),
            ] {
                p.cmd("XADD")
                    .arg(stream)
                    .arg("MAXLEN")
                    .arg("~")
                    .arg(max)
                    .arg("*")
                    .arg("r")
                    .arg(&json)
                    .ignore();
            }
        }
        if let Some(run) = &batch.run {
            p.cmd("XADD")
                .arg(self.key("runs"))
                .arg("MAXLEN")
                .arg("~")
                .arg(MAX_RUNS)
                .arg("*")
                .arg("r")
                .arg(run.to_string())
                .ignore();
        }
        for a in &batch.artefacts {
            let json = serde_json::to_string(a).expect("an artefact serialises");
            let key = self.key(&format!("artefact:{}", a.key().file_name()));
            p.cmd("SET").arg(key).arg(json).arg("EX").arg(CACHE_TTL_SECS).ignore();
        }
        for l in &batch.lives {
            let json = serde_json::to_string(l).expect("a live entry serialises");
            let key = self.key(&format!("live:{}", l.key().file_name()));
            p.cmd("SET").arg(key).arg(json).arg("EX").arg(CACHE_TTL_SECS).ignore();
        }
        if batch.is_empty() {
            return Ok(());
        }
        self.with("write the deploy records", |c| p.exec(c))
    }

    fn artefacts(&self, keys: &[ArtefactKey]) -> Result<Vec<Option<Artefact>>, StateError> {
        self.entries("artefact", keys, ArtefactKey::file_name, Artefact::key)
    }

    fn lives(&self, keys: &[LiveKey]) -> Result<Vec<Option<Live>>, StateError> {
        self.entries("live", keys, LiveKey::file_name, Live::key)
    }

    fn lock_try(
        &self,
        me: &Holder,
        keys: &[LockKey],
        queue: bool,
        ttl: Duration,
    ) -> Result<Vec<Try>, StateError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut args = self.lock_args(me, &[]);
        args.push(ms(ttl).to_string());
        args.push(if queue { "1" } else { "0" }.to_string());
        args.extend(keys.iter().map(LockKey::to_string));
        let v: Value = self.with("take the deploy locks", |c| {
            self.try_script.prepare_invoke().arg(&args).invoke(c)
        })?;
        Ok(array(v)
            .into_iter()
            .map(|a| {
                let a = array(a);
                if a.first().map(int) == Some(1) {
                    Try::Acquired { fence: a.get(1).map_or(0, int) }
                } else {
                    let holder = a.get(1).cloned().map(text).and_then(|t| Holder::decode(&t));
                    Try::Busy { holder, ahead: a.get(2).map_or(0, int) as usize }
                }
            })
            .collect())
    }

    fn lock_renew(
        &self,
        me: &Holder,
        keys: &[LockKey],
        ttl: Duration,
    ) -> Result<Vec<bool>, StateError> {
        let mut args = self.lock_args(me, &[]);
        args.push(ms(ttl).to_string());
        args.extend(keys.iter().map(LockKey::to_string));
        let v: Vec<u64> = self.with("renew the deploy locks", |c| {
            self.renew_script.prepare_invoke().arg(&args).invoke(c)
        })?;
        Ok(v.into_iter().map(|x| x == 1).collect())
    }

    fn lock_release(&self, me: &Holder, keys: &[LockKey]) -> Result<(), StateError> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut args = vec![self.url.namespace.clone(), me.encode()];
        args.extend(keys.iter().map(LockKey::to_string));
        self.with("release the deploy locks", |c| {
            self.release_script.prepare_invoke().arg(&args).invoke::<i64>(c).map(drop)
        })
    }

    fn lock_leave(&self, me: &Holder, keys: &[LockKey]) -> Result<(), StateError> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut p = redis::pipe();
        for k in keys {
            p.cmd("ZREM").arg(self.key(&format!("queue:{k}"))).arg(&me.token).ignore();
        }
        self.with("leave the lock queues", |c| p.exec(c))
    }

    fn lock_list(&self) -> Result<Vec<Held>, StateError> {
        let prefix_len = self.url.namespace.len() + 1;
        let mut keys: Vec<LockKey> = Vec::new();
        for k in self.scan("lock:*")?.into_iter().chain(self.scan("queue:*")?) {
            let rest = &k[prefix_len..];
            let name = rest.split_once(':').map_or("", |(_, n)| n);
            if let Ok(key) = LockKey::parse(name) {
                keys.push(key);
            }
        }
        keys.sort();
        keys.dedup();
        let mut out = Vec::new();
        for key in keys {
            let (holder, pttl, fence, waiting): (Option<String>, i64, Option<u64>, usize) = self
                .with("list the locks", |c| {
                    redis::pipe()
                        .cmd("GET")
                        .arg(self.key(&format!("lock:{key}")))
                        .cmd("PTTL")
                        .arg(self.key(&format!("lock:{key}")))
                        .cmd("GET")
                        .arg(self.key(&format!("fence:{key}")))
                        .cmd("ZCARD")
                        .arg(self.key(&format!("queue:{key}")))
                        .query(c)
                })?;
            let holder = holder.and_then(|h| Holder::decode(&h));
            if holder.is_none() && waiting == 0 {
                continue;
            }
            let expires_ms = (holder.is_some() && pttl > 0).then_some(pttl as u64);
            out.push(Held { key, holder, fence, waiting, expires_ms });
        }
        Ok(out)
    }

    fn lock_break(&self, key: &LockKey) -> Result<Option<Holder>, StateError> {
        let lk = self.key(&format!("lock:{key}"));
        let (old,): (Option<String>,) = self.with("release the lock", |c| {
            redis::pipe().atomic().cmd("GET").arg(&lk).cmd("DEL").arg(&lk).ignore().query(c)
        })?;
        Ok(old.and_then(|h| Holder::decode(&h)))
    }

    fn barriers(&self) -> Option<&dyn barrier::Store> {
        Some(self)
    }
}

impl barrier::Store for RedisBackend {
    fn arrive(&self, run: &str, phase: &str, shard: usize, ok: bool) -> Result<(), StateError> {
        let key = self.key(&format!("barrier:{run}:{phase}"));
        self.with("write the barrier", |c| {
            redis::pipe()
                .cmd("HSET")
                .arg(&key)
                .arg(shard)
                .arg(u8::from(ok))
                .ignore()
                .cmd("EXPIRE")
                .arg(&key)
                .arg(BARRIER_TTL_SECS)
                .ignore()
                .exec(c)
        })
    }

    fn alive(&self, run: &str, shard: usize, ttl: Duration) -> Result<(), StateError> {
        let started = self.key(&format!("barrier:{run}:started"));
        let alive = self.key(&format!("barrier:{run}:alive:{shard}"));
        self.with("write the barrier", |c| {
            redis::pipe()
                .cmd("SADD")
                .arg(&started)
                .arg(shard)
                .ignore()
                .cmd("EXPIRE")
                .arg(&started)
                .arg(BARRIER_TTL_SECS)
                .ignore()
                .cmd("SET")
                .arg(&alive)
                .arg(1)
                .arg("PX")
                .arg(ms(ttl))
                .ignore()
                .exec(c)
        })
    }

    fn shards(&self, run: &str, phase: &str, total: usize) -> Result<Vec<Shard>, StateError> {
        let ended_key = self.key(&format!("barrier:{run}:{phase}"));
        let started_key = self.key(&format!("barrier:{run}:started"));
        let alive_keys: Vec<String> =
            (1..=total).map(|n| self.key(&format!("barrier:{run}:alive:{n}"))).collect();
        let (ended, started, alive): (
            std::collections::HashMap<usize, u8>,
            std::collections::HashSet<usize>,
            Vec<Option<String>>,
        ) = self.with("read the barrier", |c| {
            redis::pipe()
                .cmd("HGETALL")
                .arg(&ended_key)
                .cmd("SMEMBERS")
                .arg(&started_key)
                .cmd("MGET")
                .arg(&alive_keys)
                .query(c)
        })?;
        Ok((1..=total)
            .map(|n| Shard {
                ended: ended.get(&n).map(|v| *v == 1),
                started: started.contains(&n),
                alive: alive.get(n - 1).is_some_and(Option::is_some),
            })
            .collect())
    }
}
