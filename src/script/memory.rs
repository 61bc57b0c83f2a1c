//! How much memory a script may hold, counted in bytes.
//!
//! Rhai's own size limits (`max_array_size`, `max_map_size`, `max_string_size`) re-measure the
//! whole value after every change to it: `a.push(x)` walks all of `a`, so building a list of
//! 100,000 items took seconds. pilum turns those off and bounds what an evaluation *holds*
//! instead, which covers every way data grows (pushes, `+=`, string building, index
//! assignment, parsing, command output) in constant time per operation:
//!
//! - a counting global allocator keeps, per thread, the bytes allocated minus the bytes freed;
//! - an evaluation notes that count when it starts ([`begin`], from `with_call`, or its first
//!   operation when it runs outside one);
//! - the engine's progress hook, which Rhai calls before every operation, stops the evaluation
//!   once it holds more than its limit ([`over`]).
//!
//! One operation can still allocate a lot before the next check, so the few calls whose
//! *argument* says how much to allocate (`pad`, `blob`, `replace` with a longer text) check the
//! remaining budget first ([`register`]), as do pilum's parsers and file readers
//! ([`check_room`]). Calls that expand their input by a bounded factor (`split`, `to_chars`)
//! are only checked after they return.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use rhai::{Blob, Dynamic, Engine, EvalAltResult, INT, ImmutableString, NativeCallContext};

/// The allocator of the whole binary: the system allocator, plus a per-thread byte count.
pub(crate) struct Counting;

thread_local! {
    /// Bytes allocated minus bytes freed by this thread.
    static NET: Cell<isize> = const { Cell::new(0) };
    /// `NET` when the current evaluation began (`None` outside evaluations).
    static BASE: Cell<Option<isize>> = const { Cell::new(None) };
    /// Evaluations begun explicitly ([`begin`]) and not yet ended on this thread.
    static EXPLICIT: Cell<u32> = const { Cell::new(0) };
    /// The running evaluation's limit, noted at its first operation (0: none).
    static LIMIT: Cell<usize> = const { Cell::new(0) };
}

fn count(delta: isize) {
    // `try_with`: never fails for a const, drop-free thread-local, but an allocator must not
    // panic even while a thread is being torn down.
    let _ = NET.try_with(|n| n.set(n.get().wrapping_add(delta)));
}

fn signed(n: usize) -> isize {
    isize::try_from(n).unwrap_or(isize::MAX)
}

// SAFETY: every call is forwarded unchanged to `System`; the byte count is a side effect that
// neither allocates nor unwinds.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            count(signed(layout.size()));
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            count(signed(layout.size()));
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) };
        count(-signed(layout.size()));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            count(signed(new_size) - signed(layout.size()));
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Bytes held by the current evaluation on this thread (0 outside one; negative when it freed
/// more than it allocated).
pub(crate) fn held() -> isize {
    match BASE.with(Cell::get) {
        Some(base) => NET.with(Cell::get) - base,
        None => 0,
    }
}

/// Ends an evaluation begun with [`begin`] (restores the outer one's start).
pub(crate) struct Span {
    outer: Option<isize>,
}

impl Drop for Span {
    fn drop(&mut self) {
        BASE.with(|b| b.set(self.outer));
        EXPLICIT.with(|e| e.set(e.get().saturating_sub(1)));
    }
}

/// Start counting an evaluation on this thread (`with_call` does this).
pub(crate) fn begin() -> Span {
    let outer = BASE.with(|b| b.replace(Some(NET.with(Cell::get))));
    EXPLICIT.with(|e| e.set(e.get() + 1));
    Span { outer }
}

/// The progress hook's check, before operation number `ops`: whether the evaluation holds more
/// than `limit` bytes. An evaluation outside [`begin`] starts counting at its first operation.
pub(crate) fn over(ops: u64, limit: usize) -> bool {
    if ops == 1 {
        LIMIT.with(|l| l.set(limit));
        if EXPLICIT.with(Cell::get) == 0 {
            BASE.with(|b| b.set(Some(NET.with(Cell::get))));
            return false;
        }
    }
    held() > signed(limit)
}

/// Whether `bytes` more fit in the running evaluation's budget; the error says who needed
/// them. Native functions call it before allocating an amount their input decides.
pub(crate) fn check_room(bytes: usize, what: &str) -> Result<(), String> {
    let limit = LIMIT.with(Cell::get);
    if limit == 0 || BASE.with(Cell::get).is_none() {
        return Ok(());
    }
    let room = signed(limit).saturating_sub(held().max(0));
    if signed(bytes) <= room {
        return Ok(());
    }
    Err(format!(
        "{what} would need {} of memory; a script may hold {}\nhelp: is the size computed from unchecked input?",
        format_bytes(bytes),
        format_bytes(limit)
    ))
}

/// `1 GiB`, `64 MiB`, `512 KiB`, `100 bytes`.
pub(crate) fn format_bytes(n: usize) -> String {
    const UNITS: [(usize, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (size, unit) in UNITS {
        if n >= size {
            let whole = n / size;
            let tenth = (n % size) * 10 / size;
            return if tenth == 0 {
                format!("{whole} {unit}")
            } else {
                format!("{whole}.{tenth} {unit}")
            };
        }
    }
    format!("{n} bytes")
}

/// How many bytes of script values one byte of JSON or YAML can become (`[1,1,1]`: two bytes
/// per 16-byte value), for the check before parsing.
pub(crate) const PARSED_PER_BYTE: usize = 8;

type RResult<T> = Result<T, Box<EvalAltResult>>;

fn err(ctx: &NativeCallContext, msg: String) -> Box<EvalAltResult> {
    EvalAltResult::ErrorRuntime(msg.into(), ctx.call_position()).into()
}

/// A requested length as `usize`; `None` for zero or negative (nothing to do).
fn wanted(len: INT) -> Option<usize> {
    usize::try_from(len).ok().filter(|n| *n > 0)
}

/// The Rhai functions [`register`] replaces.
pub(crate) const CHECKED: &[&str] = &["pad", "blob", "replace"];

/// Register the calls whose argument says how much to allocate, checked against the budget
/// first. They replace Rhai's versions (same names and semantics), which Rhai's own size limits
/// guarded: a global module registered after Rhai's packages is searched before them.
/// `pilum api` leaves them out ([`CHECKED`]): they are Rhai's functions, not pilum's.
pub(crate) fn register(engine: &mut Engine) {
    let mut m = rhai::Module::new();
    checked(&mut m);
    engine.register_global_module(m.into());
}

fn checked(m: &mut rhai::Module) {
    let size = std::mem::size_of::<Dynamic>();
    m.set_native_fn(
        "pad",
        move |ctx: NativeCallContext,
              a: &mut rhai::Array,
              len: INT,
              item: Dynamic|
              -> RResult<()> {
            let Some(len) = wanted(len).filter(|n| *n > a.len()) else { return Ok(()) };
            check_room((len - a.len()).saturating_mul(size), "`pad`").map_err(|e| err(&ctx, e))?;
            a.resize(len, item);
            Ok(())
        },
    );
    m.set_native_fn(
        "pad",
        move |ctx: NativeCallContext, b: &mut Blob, len: INT, value: INT| -> RResult<()> {
            let Some(len) = wanted(len).filter(|n| *n > b.len()) else { return Ok(()) };
            check_room(len - b.len(), "`pad`").map_err(|e| err(&ctx, e))?;
            b.resize(len, (value & 0xff) as u8);
            Ok(())
        },
    );
    m.set_native_fn(
        "pad",
        move |ctx: NativeCallContext, s: &mut ImmutableString, len: INT, c: char| -> RResult<()> {
            let Some(len) = wanted(len) else { return Ok(()) };
            let have = s.chars().count();
            if len <= have {
                return Ok(());
            }
            check_room((len - have).saturating_mul(c.len_utf8()), "`pad`")
                .map_err(|e| err(&ctx, e))?;
            let p = s.make_mut();
            p.extend(std::iter::repeat_n(c, len - have));
            Ok(())
        },
    );
    m.set_native_fn(
        "pad",
        move |ctx: NativeCallContext,
              s: &mut ImmutableString,
              len: INT,
              padding: &str|
              -> RResult<()> {
            let Some(len) = wanted(len) else { return Ok(()) };
            let have = s.chars().count();
            if len <= have || padding.is_empty() {
                return Ok(());
            }
            // At most as many bytes as the longest character of the padding, per character.
            let widest = padding.chars().map(char::len_utf8).max().unwrap_or(1);
            check_room((len - have).saturating_mul(widest), "`pad`").map_err(|e| err(&ctx, e))?;
            let p = s.make_mut();
            p.extend(padding.chars().cycle().take(len - have));
            Ok(())
        },
    );
    m.set_native_fn("blob", move |ctx: NativeCallContext, len: INT| -> RResult<Blob> {
        let len = wanted(len).unwrap_or(0);
        check_room(len, "`blob`").map_err(|e| err(&ctx, e))?;
        Ok(vec![0; len])
    });
    m.set_native_fn("blob", move |ctx: NativeCallContext, len: INT, value: INT| -> RResult<Blob> {
        let len = wanted(len).unwrap_or(0);
        check_room(len, "`blob`").map_err(|e| err(&ctx, e))?;
        Ok(vec![(value & 0xff) as u8; len])
    });
    let replace =
        move |ctx: &NativeCallContext, s: &mut ImmutableString, find: &str, with: &str| {
            if s.is_empty() {
                return Ok(());
            }
            if with.len() > find.len() {
                let hits =
                    if find.is_empty() { s.chars().count() + 1 } else { s.matches(find).count() };
                let more = hits.saturating_mul(with.len() - find.len());
                check_room(s.len().saturating_add(more), "`replace`").map_err(|e| err(ctx, e))?;
            }
            *s = s.replace(find, with).into();
            Ok(())
        };
    m.set_native_fn(
        "replace",
        move |ctx: NativeCallContext,
              s: &mut ImmutableString,
              find: &str,
              with: &str|
              -> RResult<()> { replace(&ctx, s, find, with) },
    );
    m.set_native_fn(
        "replace",
        move |ctx: NativeCallContext,
              s: &mut ImmutableString,
              find: char,
              with: &str|
              -> RResult<()> { replace(&ctx, s, find.encode_utf8(&mut [0; 4]), with) },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocations_are_counted_per_thread_and_evaluation() {
        let span = begin();
        assert!(held().abs() < 4096, "{}", held());
        let big = vec![0u8; 10 << 20];
        assert!(held() >= 10 << 20, "{}", held());
        std::thread::spawn(|| {
            // Another thread's evaluation starts from its own count.
            let _inner = begin();
            assert!(held() < 4096);
        })
        .join()
        .expect("thread");
        drop(big);
        assert!(held() < 4096, "freed: {}", held());
        drop(span);
        assert_eq!(held(), 0, "no evaluation, nothing held");
    }

    #[test]
    fn room_is_checked_against_what_is_held() {
        let _span = begin();
        LIMIT.with(|l| l.set(1 << 20));
        assert!(check_room(1000, "x").is_ok());
        let e = check_room(2 << 20, "`pad`").expect_err("too much");
        assert!(e.starts_with("`pad` would need 2 MiB of memory; a script may hold 1 MiB"), "{e}");
        assert_eq!(format_bytes(1536), "1.5 KiB");
        assert_eq!(format_bytes(1 << 30), "1 GiB");
    }
}
