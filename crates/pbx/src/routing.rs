//! Routing: the one place where a dialled number becomes a [`Destination`].
//!
//! Every call the PBX accepts is routed here before anything else happens to it: the INVITE
//! handling asks [`Dialplan::resolve`] and then hands the call to whatever serves the
//! destination (a bridge to an extension's phones, or an application answered by the PBX).
//! A new service is a new [`Destination`] variant and its application, never a branch inside
//! INVITE handling.
//!
//! [`Dialplan::resolve_call`] adds the ways out: emergency numbers before anything else, and
//! after our own numbers a public number the caller's calling rights allow, with the trunks
//! ranked by kentongan-lcr ([`outbound`]).
//!
//! The echo test (`*43`) and feature codes (`*72`+number, `*78`, `*70`, … see [`FeatureCode`]) are
//! matched first; then services
//! named in the configuration (conference rooms, …), by their exact number; then extensions
//! known to the user directory. Where a call to an extension then goes (forwarded, busy because
//! of DND or call waiting off, a forward loop) is decided by [`forwarding::reach`]. The dialplan holds no I/O: the
//! user directory and settings are handed in, so the rules are tested without a database.

pub mod forwarding;
pub mod hours;
pub mod inbound;
pub mod outbound;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use outbound::{Outbound, OutboundRefusal, TrunkCall};

use crate::config::Config;
use crate::store::{Extension, ForwardKind, Store, StoreError};

/// Where a dialled number leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// Ring the extension's registered phones and bridge the call to the one that answers.
    Extension(Extension),
    /// A conference room from `[[conference]]`, by its index in `Config::conferences`.
    Conference(RoomIndex),
    /// A feature code the caller dialled to change its own settings (answered by the PBX).
    FeatureCode(FeatureCode),
    /// `*43`: the caller hears itself, to test its phone, headset and network.
    EchoTest,
    /// A public or emergency number: out through a trunk, the routes ranked by kentongan-lcr.
    Trunk(TrunkCall),
    /// Leave a message in an extension's mailbox (where a call the extension did not take
    /// ends when `[voicemail]` is on).
    Voicemail {
        mailbox: Extension,
        greeting: VoicemailGreeting,
    },
    /// `[voicemail] access` (`*97`): the caller's own mailbox menu.
    Mailbox,
    /// `*98`: the menu of a mailbox the caller names (its PIN always asked).
    AnyMailbox,
    /// A `[[ring_group]]`, by its index in `Config::ring_groups`.
    RingGroup(GroupIndex),
    /// `*8` / `**`+extension: answer a call ringing elsewhere.
    Pickup(PickupTarget),
    /// `[parking]`'s park number (`70`): a call is parked by a blind transfer to it.
    Park,
    /// A parking slot (`71`…): dialling it retrieves the call parked there.
    ParkSlot(String),
    /// An `[[ivr]]` auto-attendant menu, by its index in `Config::ivrs`.
    Ivr(IvrIndex),
    /// `hours:NAME`: an `[[office_hours]]` schedule (by index in `Config::office_hours`),
    /// which leads to its `in_hours` or `after_hours` target at the call's time.
    OfficeHours(usize),
}

/// Whose ringing call a pickup takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PickupTarget {
    /// `*8`: any extension in the caller's `pickup_group`.
    Group,
    /// `**201`: that extension.
    Extension(Extension),
}

/// Group pickup and the prefix of directed pickup (FreePBX's defaults).
pub const GROUP_PICKUP: &str = "*8";
pub const DIRECTED_PICKUP: &str = "**";

/// A ring group's position in `Config::ring_groups` (stable until a reload).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GroupIndex(pub usize);

/// An IVR menu's position in `Config::ivrs` (stable until a reload).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IvrIndex(pub usize);

/// Any mailbox's menu (FreePBX's default).
pub const ANY_MAILBOX: &str = "*98";

/// Which greeting a caller reaching voicemail hears.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoicemailGreeting {
    /// The extension is busy (in a call, DND, or a phone answered busy).
    Busy,
    /// Nobody answered in time, or no phone is registered.
    Unavailable,
}

/// The echo test's number (FreePBX's default).
pub const ECHO_TEST: &str = "*43";

/// A feature code (FreePBX's defaults, so staff need not relearn them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeatureCode {
    /// `*72`+number (all), `*90`+number (busy), `*52`+number (no answer / unregistered).
    Forward {
        kind: ForwardKind,
        target: Extension,
    },
    /// `*73`, `*91`, `*53`.
    ClearForward(ForwardKind),
    /// `*78` on, `*79` off.
    Dnd(bool),
    /// `*70` on, `*71` off (on unless turned off).
    CallWaiting(bool),
    /// A forward code with a number that is no extension here (or none at all).
    InvalidNumber(String),
}

impl FeatureCode {
    /// The code for `dialled`, if it is one: `Ok(None)` when it is not a feature code.
    fn parse(dialled: &str, users: &dyn UserDirectory) -> Result<Option<FeatureCode>, StoreError> {
        let Some(rest) = dialled.strip_prefix('*') else {
            return Ok(None);
        };
        let (code, number) = rest.split_at(rest.len().min(2));
        let set = |kind| -> Result<Option<FeatureCode>, StoreError> {
            let target =
                Extension::parse(number).filter(|_| number.bytes().all(|b| b.is_ascii_digit()));
            Ok(Some(match target {
                Some(t) if users.exists(&t)? => FeatureCode::Forward { kind, target: t },
                _ => FeatureCode::InvalidNumber(number.to_owned()),
            }))
        };
        let exact = |c: FeatureCode| Ok(number.is_empty().then_some(c));
        match code {
            "72" => set(ForwardKind::All),
            "90" => set(ForwardKind::Busy),
            "52" => set(ForwardKind::NoAnswer),
            "73" => exact(FeatureCode::ClearForward(ForwardKind::All)),
            "91" => exact(FeatureCode::ClearForward(ForwardKind::Busy)),
            "53" => exact(FeatureCode::ClearForward(ForwardKind::NoAnswer)),
            "78" => exact(FeatureCode::Dnd(true)),
            "79" => exact(FeatureCode::Dnd(false)),
            "70" => exact(FeatureCode::CallWaiting(true)),
            "71" => exact(FeatureCode::CallWaiting(false)),
            _ => Ok(None),
        }
    }
}

/// A conference room's position in `Config::conferences` (stable until a reload).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RoomIndex(pub usize);

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::Extension(e) => write!(f, "extension {e}"),
            Destination::Conference(r) => write!(f, "conference room #{}", r.0),
            Destination::FeatureCode(c) => write!(f, "feature code {c:?}"),
            Destination::EchoTest => f.write_str("echo test"),
            Destination::Trunk(t) => write!(f, "{} ({}) over a trunk", t.number, t.class),
            Destination::Voicemail { mailbox, .. } => write!(f, "voicemail of {mailbox}"),
            Destination::Mailbox => f.write_str("own mailbox"),
            Destination::AnyMailbox => f.write_str("any mailbox"),
            Destination::RingGroup(g) => write!(f, "ring group #{}", g.0),
            Destination::Pickup(PickupTarget::Group) => f.write_str("group pickup"),
            Destination::Pickup(PickupTarget::Extension(e)) => write!(f, "pickup of {e}"),
            Destination::Park => f.write_str("call parking"),
            Destination::ParkSlot(s) => write!(f, "parking slot {s}"),
            Destination::Ivr(i) => write!(f, "IVR menu #{}", i.0),
            Destination::OfficeHours(i) => write!(f, "office hours #{i}"),
        }
    }
}

/// Why a number could not be routed.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("{0:?} is not a number this PBX serves (no extension or service has it)")]
    NotFound(String),
    #[error("the user directory could not be read")]
    Lookup(#[from] StoreError),
    /// A public number this caller may not dial, or that no trunk can carry now.
    #[error("{0}")]
    Refused(OutboundRefusal),
}

/// Who is calling out and what the trunks carry now, for [`Dialplan::resolve_call`].
#[derive(Debug, Clone, Copy)]
pub struct CallerContext<'a> {
    /// The caller's `--rights` name (`None`: the default rights).
    pub rights: Option<&'a str>,
    pub unix_s: i64,
    /// Calls on each trunk now, by index in `Config::trunks`.
    pub channels_in_use: &'a [u32],
}

/// Answers "does this extension exist?"; the daemon hands in its [`Store`].
pub trait UserDirectory {
    fn exists(&self, ext: &Extension) -> Result<bool, StoreError>;
}

impl UserDirectory for Store {
    fn exists(&self, ext: &Extension) -> Result<bool, StoreError> {
        self.user_exists(&ext.0)
    }
}

/// The numbering plan, built from the configuration (and rebuilt on reload).
#[derive(Debug, Clone, Default)]
pub struct Dialplan {
    services: HashMap<String, Destination>,
    /// `[lcr]` and its files, when trunks are configured and the files loaded.
    outbound: Option<Arc<Outbound>>,
    /// `[[did]]`: the numbers trunks may call in on ([`inbound`]).
    dids: Vec<crate::config::Did>,
    /// `[[office_hours]]` names, by index, and their schedules once loaded.
    hours_names: Vec<String>,
    hours: Arc<hours::Schedules>,
}

impl Dialplan {
    pub fn new(config: &Config) -> Dialplan {
        let mut services = HashMap::new();
        for (i, room) in config.conferences.iter().enumerate() {
            services.insert(room.number.clone(), Destination::Conference(RoomIndex(i)));
        }
        services.insert(config.parking.park_number(), Destination::Park);
        for slot in config.parking.slots() {
            services.insert(slot.clone(), Destination::ParkSlot(slot));
        }
        for (i, g) in config.ring_groups.iter().enumerate() {
            services.insert(g.number.clone(), Destination::RingGroup(GroupIndex(i)));
        }
        if let Some(vm) = config.voicemail.as_ref().filter(|v| v.enabled) {
            services.insert(vm.access.clone(), Destination::Mailbox);
            services.insert(ANY_MAILBOX.into(), Destination::AnyMailbox);
        }
        for (i, ivr) in config.ivrs.iter().enumerate() {
            services.insert(ivr.number.clone(), Destination::Ivr(IvrIndex(i)));
        }
        Dialplan {
            services,
            outbound: None,
            dids: config.dids.clone(),
            hours_names: config.office_hours.iter().map(|h| h.name.clone()).collect(),
            hours: Arc::default(),
        }
    }

    /// The plan with the office-hours schedules read ([`hours::load`]).
    pub fn with_office_hours(mut self, schedules: hours::Schedules) -> Dialplan {
        self.hours = Arc::new(schedules);
        self
    }

    /// Where office hours `i` send a call at `unix_s` (a target for [`Dialplan::resolve_target`]).
    pub fn office_hours_target(&self, i: usize, unix_s: i64) -> Option<&str> {
        self.hours.target(i, unix_s)
    }

    /// [`Dialplan::resolve_target`], with office hours followed to where they lead at
    /// `unix_s` (through at most a few schedules naming each other).
    pub fn resolve_target_at(
        &self,
        target: &str,
        users: &dyn UserDirectory,
        unix_s: i64,
    ) -> Result<Destination, RouteError> {
        let mut dest = self.resolve_target(target, users)?;
        for _ in 0..4 {
            let Destination::OfficeHours(i) = dest else {
                return Ok(dest);
            };
            let next = self
                .office_hours_target(i, unix_s)
                .ok_or_else(|| RouteError::NotFound(target.to_owned()))?
                .to_owned();
            dest = self.resolve_target(&next, users)?;
        }
        Err(RouteError::NotFound(target.to_owned()))
    }

    /// The plan with outbound calls through trunks (`None`: numbers that are not ours are 404).
    pub fn with_outbound(mut self, outbound: Option<Outbound>) -> Dialplan {
        self.outbound = outbound.map(Arc::new);
        self
    }

    pub fn outbound(&self) -> Option<&Outbound> {
        self.outbound.as_deref()
    }

    /// The destination of a call `dialled` by a caller: emergency numbers first (they go out
    /// even if an extension had the same digits), then [`Dialplan::resolve`], then a trunk for
    /// a public number the caller's rights allow.
    pub fn resolve_call(
        &self,
        dialled: &str,
        users: &dyn UserDirectory,
        caller: CallerContext<'_>,
    ) -> Result<Destination, RouteError> {
        let trunk = |o: &Outbound| {
            o.route(
                dialled,
                caller.rights,
                caller.unix_s,
                caller.channels_in_use,
            )
            .map(|r| r.map(Destination::Trunk).map_err(RouteError::Refused))
        };
        if let Some(o) = self.outbound.as_deref() {
            if kentongan_lcr::number::Emergency::from_digits(dialled).is_some() {
                if let Some(d) = trunk(o) {
                    return d;
                }
            }
        }
        match self.resolve(dialled, users) {
            Err(RouteError::NotFound(n)) => match self.outbound.as_deref().and_then(trunk) {
                Some(d) => d,
                None => Err(RouteError::NotFound(n)),
            },
            other => other,
        }
    }

    /// The destination of `dialled` (the Request-URI's user part).
    pub fn resolve(
        &self,
        dialled: &str,
        users: &dyn UserDirectory,
    ) -> Result<Destination, RouteError> {
        if dialled == ECHO_TEST {
            return Ok(Destination::EchoTest);
        }
        if dialled == GROUP_PICKUP {
            return Ok(Destination::Pickup(PickupTarget::Group));
        }
        if let Some(n) = dialled.strip_prefix(DIRECTED_PICKUP) {
            return match Extension::parse(n) {
                Some(e) if users.exists(&e)? => Ok(Destination::Pickup(PickupTarget::Extension(e))),
                _ => Err(RouteError::NotFound(dialled.to_owned())),
            };
        }
        if let Some(code) = FeatureCode::parse(dialled, users)? {
            return Ok(Destination::FeatureCode(code));
        }
        if let Some(d) = self.services.get(dialled) {
            return Ok(d.clone());
        }
        let ext =
            Extension::parse(dialled).ok_or_else(|| RouteError::NotFound(dialled.to_owned()))?;
        if users.exists(&ext)? {
            Ok(Destination::Extension(ext))
        } else {
            Err(RouteError::NotFound(dialled.to_owned()))
        }
    }

    /// Where a configured target leads (an `[[ivr]]` option or `invalid`): `vm:EXT` is
    /// EXT's mailbox (the unavailable greeting), anything else is resolved as if dialled.
    /// Config loading has checked the targets' shape; an extension is looked up now.
    pub fn resolve_target(
        &self,
        target: &str,
        users: &dyn UserDirectory,
    ) -> Result<Destination, RouteError> {
        if let Some(name) = target.strip_prefix("hours:") {
            return self
                .hours_names
                .iter()
                .position(|n| n == name)
                .map(Destination::OfficeHours)
                .ok_or_else(|| RouteError::NotFound(target.to_owned()));
        }
        match target.strip_prefix("vm:") {
            Some(ext) => {
                let mailbox =
                    Extension::parse(ext).ok_or_else(|| RouteError::NotFound(target.to_owned()))?;
                if users.exists(&mailbox)? {
                    Ok(Destination::Voicemail {
                        mailbox,
                        greeting: VoicemailGreeting::Unavailable,
                    })
                } else {
                    Err(RouteError::NotFound(target.to_owned()))
                }
            }
            None => self.resolve(target, users),
        }
    }

    /// The service (not extension) a number is taken by, for `user add` to refuse it.
    pub fn service(&self, number: &str) -> Option<&Destination> {
        self.services.get(number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Users(&'static [&'static str]);
    impl UserDirectory for Users {
        fn exists(&self, ext: &Extension) -> Result<bool, StoreError> {
            Ok(self.0.contains(&ext.0.as_str()))
        }
    }

    fn plan(extra: &str) -> Dialplan {
        let config = Config::from_toml(&format!("[sip]\ndomain = \"pbx.local\"\n{extra}")).unwrap();
        Dialplan::new(&config)
    }

    #[test]
    fn star_43_is_the_echo_test_and_only_exactly_that() {
        let p = plan("");
        let users = Users(&["201"]);
        assert_eq!(p.resolve("*43", &users).unwrap(), Destination::EchoTest);
        assert!(p.resolve("*431", &users).is_err());
        assert!(p.resolve("43", &users).is_err());
    }

    #[test]
    fn extensions_route_to_themselves_and_unknown_numbers_do_not_route() {
        let p = plan("");
        let users = Users(&["201", "202"]);
        assert_eq!(
            p.resolve("202", &users).unwrap(),
            Destination::Extension(Extension("202".into()))
        );
        assert!(matches!(
            p.resolve("203", &users),
            Err(RouteError::NotFound(n)) if n == "203"
        ));
        assert!(matches!(
            p.resolve("a'; DROP TABLE users", &users),
            Err(RouteError::NotFound(_))
        ));
    }

    #[test]
    fn feature_codes_route_to_the_feature_application() {
        let p = plan("");
        let users = Users(&["201", "202"]);
        let code = |d: &str| match p.resolve(d, &users) {
            Ok(Destination::FeatureCode(c)) => Some(c),
            _ => None,
        };
        let fwd = |kind, t: &str| {
            Some(FeatureCode::Forward {
                kind,
                target: Extension(t.into()),
            })
        };
        assert_eq!(code("*72202"), fwd(ForwardKind::All, "202"));
        assert_eq!(code("*90202"), fwd(ForwardKind::Busy, "202"));
        assert_eq!(code("*52201"), fwd(ForwardKind::NoAnswer, "201"));
        assert_eq!(
            code("*73"),
            Some(FeatureCode::ClearForward(ForwardKind::All))
        );
        assert_eq!(
            code("*91"),
            Some(FeatureCode::ClearForward(ForwardKind::Busy))
        );
        assert_eq!(
            code("*53"),
            Some(FeatureCode::ClearForward(ForwardKind::NoAnswer))
        );
        assert_eq!(code("*78"), Some(FeatureCode::Dnd(true)));
        assert_eq!(code("*79"), Some(FeatureCode::Dnd(false)));
        assert_eq!(code("*70"), Some(FeatureCode::CallWaiting(true)));
        assert_eq!(code("*71"), Some(FeatureCode::CallWaiting(false)));
        assert_eq!(code("*701"), None);
        // A forward to a number nobody has, or to no number, is still the code (the caller
        // is told the number is not valid); other star codes are not this slice's.
        assert_eq!(
            code("*72999"),
            Some(FeatureCode::InvalidNumber("999".into()))
        );
        assert_eq!(code("*72"), Some(FeatureCode::InvalidNumber(String::new())));
        assert_eq!(
            code("*72a'b"),
            Some(FeatureCode::InvalidNumber("a'b".into()))
        );
        assert_eq!(code("*7812"), None);
        assert_eq!(code("*43"), None);
        assert_eq!(code("*"), None);
    }

    #[test]
    fn a_conference_number_is_a_room_even_if_an_extension_has_it() {
        let p = plan("[[conference]]\nnumber = \"800\"\nname = \"Ruang Rapat\"\n");
        let users = Users(&["800"]);
        assert_eq!(
            p.resolve("800", &users).unwrap(),
            Destination::Conference(RoomIndex(0))
        );
    }

    fn with_trunks(p: Dialplan) -> Dialplan {
        use kentongan_lcr::lcr::Router;
        use kentongan_lcr::operators::OperatorTable;
        use kentongan_lcr::rates::RateTable;
        use kentongan_lcr::rights::RightsBook;
        let config = Config::from_toml(
            "[sip]\ndomain = \"pbx.local\"\n[[trunk]]\nname = \"out\"\nkind = \"provider\"\naddress = \"127.0.0.1:5091\"\n[lcr]\ncountry = \"62\"\n",
        )
        .unwrap();
        let names: Vec<_> = config.trunks.iter().map(|t| t.name.clone()).collect();
        let rates = RateTable::parse_for_trunks("out,+62,650,0,60\n", &names).unwrap();
        let router = Router::new(
            &rates,
            config.trunks.iter().map(|t| t.facts()).collect(),
            OperatorTable::indonesia().unwrap(),
            &[],
        )
        .unwrap();
        let plan = config.lcr.as_ref().unwrap().numbering_plan().unwrap();
        p.with_outbound(Some(Outbound::new(
            plan,
            router,
            RightsBook::default(),
            0,
            vec![None],
        )))
    }

    #[test]
    fn emergency_beats_an_extension_and_extensions_beat_trunks() {
        let p = with_trunks(plan(""));
        let users = Users(&["112", "201"]);
        let ctx = CallerContext {
            rights: None,
            unix_s: 0,
            channels_in_use: &[0],
        };
        match p.resolve_call("112", &users, ctx).unwrap() {
            Destination::Trunk(t) => assert_eq!(t.number, "112"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            p.resolve_call("201", &users, ctx).unwrap(),
            Destination::Extension(Extension("201".into()))
        );
        match p.resolve_call("081234567890", &users, ctx).unwrap() {
            Destination::Trunk(t) => assert_eq!(t.number, "+6281234567890"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            p.resolve_call("006512345678", &users, ctx),
            Err(RouteError::Refused(OutboundRefusal::Rights { .. }))
        ));
        // Without trunks nothing goes out: a public number is not found.
        assert!(matches!(
            plan("").resolve_call("081234567890", &users, ctx),
            Err(RouteError::NotFound(_))
        ));
        assert!(matches!(
            p.resolve_call("999", &users, ctx),
            Err(RouteError::NotFound(_))
        ));
    }

    #[test]
    fn star_8_and_star_star_extension_are_pickups() {
        let p = plan("");
        let users = Users(&["201"]);
        assert_eq!(
            p.resolve("*8", &users).unwrap(),
            Destination::Pickup(PickupTarget::Group)
        );
        assert_eq!(
            p.resolve("**201", &users).unwrap(),
            Destination::Pickup(PickupTarget::Extension(Extension("201".into())))
        );
        assert!(p.resolve("**209", &users).is_err());
        assert!(p.resolve("**", &users).is_err());
        assert!(p.resolve("*81", &users).is_err());
    }

    #[test]
    fn seventy_parks_and_the_slots_retrieve() {
        let users = Users(&["201"]);
        let p = plan("");
        assert_eq!(p.resolve("70", &users).unwrap(), Destination::Park);
        assert_eq!(
            p.resolve("71", &users).unwrap(),
            Destination::ParkSlot("71".into())
        );
        assert!(p.resolve("79", &users).is_err());
        let p = plan("[parking]\nslots = \"801-802\"\n");
        assert_eq!(p.resolve("800", &users).unwrap(), Destination::Park);
        assert!(p.resolve("70", &users).is_err());
    }

    #[test]
    fn a_ring_group_number_routes_to_the_group() {
        let p = plan("[[ring_group]]\nnumber = \"600\"\nmembers = [\"201\"]\n");
        let users = Users(&["201"]);
        assert_eq!(
            p.resolve("600", &users).unwrap(),
            Destination::RingGroup(GroupIndex(0))
        );
        assert!(p.resolve("601", &users).is_err());
    }

    #[test]
    fn ivr_numbers_and_targets_resolve() {
        let users = Users(&["200", "201"]);
        let p = plan(
            "[voicemail]\n[[ivr]]\nnumber = \"700\"\ngreeting = \"Halo\"\noptions = { \"1\" = \"701\" }\n[[ivr]]\nnumber = \"701\"\ngreeting = \"Hai\"\n",
        );
        assert_eq!(
            p.resolve("700", &users).unwrap(),
            Destination::Ivr(IvrIndex(0))
        );
        assert_eq!(
            p.resolve_target("701", &users).unwrap(),
            Destination::Ivr(IvrIndex(1))
        );
        assert_eq!(
            p.resolve_target("vm:201", &users).unwrap(),
            Destination::Voicemail {
                mailbox: Extension("201".into()),
                greeting: VoicemailGreeting::Unavailable
            }
        );
        assert_eq!(
            p.resolve_target("200", &users).unwrap(),
            Destination::Extension(Extension("200".into()))
        );
        assert!(p.resolve_target("vm:299", &users).is_err());
        assert!(p.resolve_target("299", &users).is_err());
    }

    #[test]
    fn the_voicemail_access_code_is_the_mailbox_only_when_voicemail_is_on() {
        let users = Users(&["201"]);
        let p = plan("[voicemail]\naccess = \"*97\"\n");
        assert_eq!(p.resolve("*97", &users).unwrap(), Destination::Mailbox);
        assert_eq!(p.resolve("*98", &users).unwrap(), Destination::AnyMailbox);
        assert!(plan("").resolve("*97", &users).is_err());
        assert!(plan("").resolve("*98", &users).is_err());
        assert!(plan("[voicemail]\nenabled = false\n")
            .resolve("*97", &users)
            .is_err());
        let p = plan("[voicemail]\naccess = \"*86\"\n");
        assert_eq!(p.resolve("*86", &users).unwrap(), Destination::Mailbox);
    }
}
