//! Schedules: KEDA-cron-like windows (`start`/`end` 5-field cron in an IANA time zone and a
//! value) turned into level signals. A window is open while the latest `start` occurrence is
//! more recent than the latest `end` occurrence, evaluated in the schedule's zone so daylight
//! saving time moves the window with the wall clock. Opening raises the level
//! `schedule:<name>` (action `set`, the schedule's value), closing clears it: the scaler and
//! `simulate` feed these changes into a pool's signal book exactly like an alarm.

use chrono::{DateTime, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use serde::{Deserialize, Serialize};

use crate::autoscale::pool::Action;
use crate::autoscale::signal::{Book, Change, Kind, Signal, SourceKind};
use crate::diagnostic::{Diagnostic, Problem};

/// Prefix of the level keys schedules own in a signal book.
pub(crate) const KEY_PREFIX: &str = "schedule:";

/// One schedule as written in the pools file.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScheduleSpec {
    pub name: String,
    /// 5-field cron expression opening the window.
    pub start: String,
    /// 5-field cron expression closing the window.
    pub end: String,
    /// IANA time zone the expressions are read in.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// The value the pool should have at least while the window is open.
    pub value: i64,
}

fn default_timezone() -> String {
    "UTC".into()
}

/// A compiled schedule.
#[derive(Debug, Clone)]
pub(crate) struct Schedule {
    pub name: String,
    pub value: i64,
    start: Cron,
    end: Cron,
    tz: chrono_tz::Tz,
}

/// Which field of a schedule a problem is in, for locating it in the pools file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    Name,
    Start,
    End,
    Timezone,
}

impl Field {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::Start => "start",
            Self::End => "end",
            Self::Timezone => "timezone",
        }
    }
}

/// A schedule that does not compile: the field it is about and the problem, as a
/// [`Diagnostic`] without a file yet (the pools file loader locates it).
pub(crate) type ScheduleError = Box<(Field, Diagnostic)>;

fn problem(field: Field, problem: Problem) -> ScheduleError {
    Box::new((field, Diagnostic::of("", problem)))
}

fn parse_cron(field: Field, name: &str, text: &str) -> Result<Cron, ScheduleError> {
    let parser = CronParser::builder().seconds(Seconds::Disallowed).year(Year::Disallowed).build();
    let cron = parser.parse(text).map_err(|e| {
        let (schedule, text) = (name.to_string(), text.to_string());
        let error = e.to_string();
        problem(field, Problem::ScheduleBadCron { schedule, field: field.as_str(), text, error })
    })?;
    // A pattern such as `0 0 31 2 *` parses but never fires; such a window could never move.
    if cron.find_next_occurrence(&Utc::now(), true).is_err() {
        let (schedule, text) = (name.to_string(), text.to_string());
        return Err(problem(
            field,
            Problem::ScheduleNeverMatches { schedule, field: field.as_str(), text },
        ));
    }
    Ok(cron)
}

impl Schedule {
    /// Compile a schedule: both cron expressions and the time zone.
    pub(crate) fn compile(spec: &ScheduleSpec) -> Result<Self, ScheduleError> {
        let name = spec.name.as_str();
        if name.trim().is_empty() {
            return Err(problem(Field::Name, Problem::ScheduleNoName));
        }
        let start = parse_cron(Field::Start, name, &spec.start)?;
        let end = parse_cron(Field::End, name, &spec.end)?;
        if spec.start.split_whitespace().eq(spec.end.split_whitespace()) {
            let schedule = name.to_string();
            return Err(problem(Field::End, Problem::ScheduleEmptyWindow { schedule }));
        }
        let tz: chrono_tz::Tz = spec.timezone.parse().map_err(|_| {
            let suggestion = crate::diagnostic::closest(
                &spec.timezone,
                chrono_tz::TZ_VARIANTS.iter().map(|t| t.name()),
            );
            let (schedule, timezone) = (name.to_string(), spec.timezone.clone());
            let mut p = problem(Field::Timezone, Problem::UnknownTimezone { schedule, timezone });
            p.1 = p.1.suggest(suggestion);
            p
        })?;
        Ok(Self { name: spec.name.clone(), value: spec.value, start, end, tz })
    }

    /// The level key of this schedule in a signal book.
    pub(crate) fn key(&self) -> String {
        format!("{KEY_PREFIX}{}", self.name)
    }

    /// When the window containing `now` opened, or `None` when `now` is outside the window.
    /// Both ends are found backwards from `now` in the schedule's zone; an `end` at the very
    /// same minute as `start` closes the window.
    pub(crate) fn opened_at(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = now.with_timezone(&self.tz);
        let start = self.start.find_previous_occurrence(&local, true).ok()?;
        match self.end.find_previous_occurrence(&local, true) {
            Ok(end) if end >= start => None,
            _ => Some(start.with_timezone(&Utc)),
        }
    }

    /// The level signal of an open window.
    pub(crate) fn signal(&self, opened: DateTime<Utc>) -> Signal {
        Signal::new(
            Kind::Level,
            SourceKind::Schedule,
            &self.name,
            self.key(),
            Action::Set,
            0,
            Some(self.value),
            opened,
        )
    }
}

/// The changes that bring a pool's book in line with its schedules at `now`: a raise for each
/// window that is open and not (or differently) in the book, a clear for each schedule level
/// whose window closed or whose schedule no longer exists (after a reload).
pub(crate) fn changes(schedules: &[Schedule], book: &Book, now: DateTime<Utc>) -> Vec<Change> {
    let mut out = Vec::new();
    for s in schedules {
        let key = s.key();
        let held = book.levels.get(&key);
        match s.opened_at(now) {
            Some(opened) => {
                if held.is_none_or(|l| l.value != Some(s.value) || l.action != Action::Set) {
                    out.push(Change::Raise(s.signal(opened)));
                }
            }
            None => {
                if held.is_some() {
                    out.push(Change::Clear { key, then: None });
                }
            }
        }
    }
    for key in book.levels.keys() {
        if let Some(name) = key.strip_prefix(KEY_PREFIX)
            && !schedules.iter().any(|s| s.name == name)
        {
            out.push(Change::Clear { key: key.clone(), then: None });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(start: &str, end: &str, tz: &str) -> Schedule {
        Schedule::compile(&ScheduleSpec {
            name: "office".into(),
            start: start.into(),
            end: end.into(),
            timezone: tz.into(),
            value: 10,
        })
        .expect("valid schedule")
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).expect("rfc3339").with_timezone(&Utc)
    }

    #[test]
    fn inside_and_outside_a_weekday_window() {
        let s = schedule("0 8 * * 1-5", "0 18 * * 1-5", "UTC");
        // 2026-11-18 is a Wednesday.
        assert_eq!(s.opened_at(at("2026-11-18T09:30:00Z")), Some(at("2026-11-18T08:00:00Z")));
        assert_eq!(s.opened_at(at("2026-11-18T08:00:00Z")), Some(at("2026-11-18T08:00:00Z")));
        assert_eq!(s.opened_at(at("2026-11-18T07:59:00Z")), None);
        assert_eq!(s.opened_at(at("2026-11-18T18:00:00Z")), None);
        assert_eq!(s.opened_at(at("2026-11-18T23:00:00Z")), None);
    }

    #[test]
    fn weekday_range_excludes_the_weekend() {
        let s = schedule("0 8 * * 1-5", "0 18 * * 1-5", "UTC");
        // Saturday and Sunday at noon: the last start (Friday 08:00) is older than the last
        // end (Friday 18:00).
        assert_eq!(s.opened_at(at("2026-11-21T12:00:00Z")), None);
        assert_eq!(s.opened_at(at("2026-11-22T12:00:00Z")), None);
        assert_eq!(s.opened_at(at("2026-11-23T12:00:00Z")), Some(at("2026-11-23T08:00:00Z")));
    }

    #[test]
    fn window_across_midnight() {
        let s = schedule("0 22 * * *", "0 6 * * *", "UTC");
        assert_eq!(s.opened_at(at("2026-11-18T02:00:00Z")), Some(at("2026-11-17T22:00:00Z")));
        assert_eq!(s.opened_at(at("2026-11-18T12:00:00Z")), None);
    }

    #[test]
    fn time_zone_follows_daylight_saving() {
        let s = schedule("0 8 * * *", "0 18 * * *", "Europe/Paris");
        // Summer (UTC+2): 08:00 Paris is 06:00 UTC.
        assert_eq!(s.opened_at(at("2026-07-15T06:30:00Z")), Some(at("2026-07-15T06:00:00Z")));
        assert_eq!(s.opened_at(at("2026-07-15T16:30:00Z")), None);
        // Winter (UTC+1): 08:00 Paris is 07:00 UTC.
        assert_eq!(s.opened_at(at("2026-01-15T06:30:00Z")), None);
        assert_eq!(s.opened_at(at("2026-01-15T07:30:00Z")), Some(at("2026-01-15T07:00:00Z")));
        assert_eq!(s.opened_at(at("2026-01-15T16:30:00Z")), Some(at("2026-01-15T07:00:00Z")));
        // The day clocks go forward (2026-03-29, 02:00 → 03:00): still 08:00 local.
        assert_eq!(s.opened_at(at("2026-03-29T06:30:00Z")), Some(at("2026-03-29T06:00:00Z")));
    }

    #[test]
    fn compile_errors_name_the_field() {
        let spec = |start: &str, tz: &str| ScheduleSpec {
            name: "x".into(),
            start: start.into(),
            end: "0 18 * * *".into(),
            timezone: tz.into(),
            value: 1,
        };
        let (field, e) = *Schedule::compile(&spec("0 25 * * *", "UTC")).unwrap_err();
        assert_eq!(field, Field::Start);
        assert!(
            e.message.contains("invalid `start` cron expression `0 25 * * *`"),
            "{}",
            e.message
        );
        let (field, _) = *Schedule::compile(&spec("0 0 8 * * *", "UTC")).unwrap_err();
        assert_eq!(field, Field::Start, "six fields are refused");
        let (field, e) = *Schedule::compile(&spec("0 8 * * *", "Europe/Pari")).unwrap_err();
        assert_eq!(field, Field::Timezone);
        assert_eq!(e.did_you_mean.as_deref(), Some("Europe/Paris"));
        let (field, _) = *Schedule::compile(&spec("0 18 * * *", "UTC")).unwrap_err();
        assert_eq!(field, Field::End);
    }

    #[test]
    fn changes_raise_then_clear() {
        let s = schedule("0 8 * * *", "0 18 * * *", "UTC");
        let mut book = Book::default();
        let open = changes(std::slice::from_ref(&s), &book, at("2026-11-18T09:00:00Z"));
        assert_eq!(open.len(), 1);
        for c in open {
            assert!(book.apply(0, c));
        }
        assert_eq!(book.levels["schedule:office"].value, Some(10));
        assert!(changes(std::slice::from_ref(&s), &book, at("2026-11-18T10:00:00Z")).is_empty());
        let close = changes(std::slice::from_ref(&s), &book, at("2026-11-18T19:00:00Z"));
        assert!(matches!(&close[..], [Change::Clear { key, .. }] if key == "schedule:office"));
        // A schedule removed from the file clears its level too.
        let stale = changes(&[], &book, at("2026-11-18T09:00:00Z"));
        assert_eq!(stale.len(), 1);
    }

    mod props {
        use chrono::{DateTime, Utc};
        use proptest::prelude::*;

        use crate::autoscale::schedule::{Schedule, ScheduleSpec};

        fn cron() -> impl Strategy<Value = String> {
            prop_oneof![
                Just("0 8 * * 1-5".to_string()),
                Just("* * * * *".to_string()),
                Just("0 0 31 2 *".to_string()),
                "[0-9*,/ -]{0,24}",
                "(([0-9]{1,3}|\\*)(/[0-9]{1,3})? ){4}([0-9]{1,3}|\\*|MON-FRI)",
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 32, failure_persistence: None, ..ProptestConfig::default() })]

            /// Any expressions and time zone: compiling never panics; a compiled schedule
            /// answers for any moment of this century without panicking, and a rejection
            /// names its field and says what to do.
            #[test]
            fn schedules_never_panic(
                start in cron(),
                end in cron(),
                tz in prop_oneof![Just("UTC".to_string()), Just("Europe/Paris".to_string()), ".{0,16}"],
                value in any::<i64>(),
                at in 946_684_800i64..4_102_444_800,
            ) {
                let spec = ScheduleSpec { name: "s".into(), start, end, timezone: tz, value };
                match Schedule::compile(&spec) {
                    Ok(s) => {
                        let now: DateTime<Utc> = DateTime::from_timestamp(at, 0).expect("in range");
                        let _ = s.opened_at(now);
                    }
                    Err(e) => prop_assert!(e.1.help.is_some() && !e.1.message.is_empty()),
                }
            }
        }
    }
}
