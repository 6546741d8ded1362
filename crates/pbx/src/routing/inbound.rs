//! Inbound calls from trunks: the number a provider or gateway called us on (its DID) is
//! matched to a `[[did]]`, whose `to` is routed like a number dialled inside the office.
//!
//! Nothing else is reachable from a trunk: a DID that is not listed is refused, and a `to`
//! can only name our own numbers ([`Dialplan::resolve`], which never yields a trunk), so a
//! call from outside can never be turned into a call out (the classic toll-fraud hole of a
//! PBX that routes inbound calls through its full dialplan).

use kentongan_lcr::rates::TrunkName;

use super::{Destination, Dialplan, RouteError, UserDirectory};
use crate::store::StoreError;

/// An inbound call that has somewhere to go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundCall {
    /// The DID as the CDR records it: E.164 when the numbering plan is known.
    pub did: String,
    pub destination: Destination,
}

/// Why an inbound call is refused.
#[derive(Debug, thiserror::Error)]
pub enum InboundRefusal {
    #[error("{number:?} is not a [[did]] of this PBX (for this trunk); add a [[did]] with this number if calls to it should be taken")]
    UnknownDid { number: String },
    #[error("[[did]] {did} leads to {to:?}, which is no extension or service that callers from outside may reach; set `to` to an extension, room or group")]
    NotServed { did: String, to: String },
    #[error("the user directory could not be read")]
    Lookup(#[from] StoreError),
}

impl Dialplan {
    /// Where a call from `trunk` to `did` (as the trunk wrote it) goes.
    /// `unix_s` is the call's time, for a DID to office hours (`hours:NAME`).
    pub fn resolve_inbound(
        &self,
        did: &str,
        trunk: &TrunkName,
        users: &dyn UserDirectory,
        unix_s: i64,
    ) -> Result<InboundCall, InboundRefusal> {
        let normalise = |n: &str| -> String {
            match self.outbound.as_deref().and_then(|o| o.e164(n)) {
                Some(e) => e,
                // Without `[lcr]` there is no numbering plan: numbers compare as written.
                None => n.to_owned(),
            }
        };
        let number = normalise(did);
        let matches = |d: &&crate::config::Did| normalise(&d.number) == number;
        // A DID bound to this trunk beats one open to every trunk.
        let found = self
            .dids
            .iter()
            .filter(matches)
            .find(|d| d.trunk.as_ref() == Some(trunk))
            .or_else(|| self.dids.iter().filter(matches).find(|d| d.trunk.is_none()));
        let Some(entry) = found else {
            return Err(InboundRefusal::UnknownDid { number });
        };
        let not_served = || InboundRefusal::NotServed {
            did: number.clone(),
            to: entry.to.clone(),
        };
        // A target as IVR options name them: a number, `vm:EXT` or `hours:NAME`.
        let destination = match self.resolve_target_at(&entry.to, users, unix_s) {
            Ok(d) => d,
            Err(RouteError::Lookup(e)) => return Err(InboundRefusal::Lookup(e)),
            Err(_) => return Err(not_served()),
        };
        match destination {
            // These act on the caller's own extension, which a caller from outside has not;
            // a trunk is never a destination of an inbound call.
            Destination::FeatureCode(_) | Destination::Mailbox | Destination::Trunk(_) => {
                Err(not_served())
            }
            destination => Ok(InboundCall {
                did: number,
                destination,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::store::Extension;

    struct Users(&'static [&'static str]);
    impl UserDirectory for Users {
        fn exists(&self, ext: &Extension) -> Result<bool, StoreError> {
            Ok(self.0.contains(&ext.0.as_str()))
        }
    }

    fn plan(dids: &str) -> Dialplan {
        let config = Config::from_toml(&format!(
            "[sip]\ndomain = \"pbx.local\"\n\
             [[trunk]]\nname = \"provider\"\nkind = \"provider\"\naddress = \"127.0.0.1:5091\"\n\
             [[trunk]]\nname = \"other\"\nkind = \"provider\"\naddress = \"127.0.0.1:5092\"\n\
             [[conference]]\nnumber = \"800\"\nname = \"Rapat\"\n{dids}"
        ))
        .unwrap();
        Dialplan::new(&config).with_office_hours(crate::routing::hours::load(&config))
    }

    fn trunk(name: &str) -> TrunkName {
        TrunkName::new(name).unwrap()
    }

    #[test]
    fn a_listed_did_leads_to_its_destination() {
        let p = plan(
            "[[did]]\nnumber = \"+62215550100\"\nto = \"201\"\n\
             [[did]]\nnumber = \"+62215550101\"\nto = \"800\"\n",
        );
        let users = Users(&["201"]);
        let call = p
            .resolve_inbound("+62215550100", &trunk("provider"), &users, 0)
            .unwrap();
        assert_eq!(
            call.destination,
            Destination::Extension(Extension("201".into()))
        );
        assert_eq!(call.did, "+62215550100");
        assert!(matches!(
            p.resolve_inbound("+62215550101", &trunk("other"), &users, 0)
                .unwrap()
                .destination,
            Destination::Conference(_)
        ));
    }

    #[test]
    fn a_did_may_lead_to_a_mailbox_or_office_hours() {
        let p = plan(
            "[voicemail]\n[[office_hours]]\nname = \"kantor\"\ntimezone = \"UTC\"\n\
             open = [\"mon-fri 08:00-17:00\"]\nin_hours = \"201\"\nafter_hours = \"vm:201\"\n\
             [[did]]\nnumber = \"+62215550100\"\nto = \"vm:201\"\n\
             [[did]]\nnumber = \"+62215550101\"\nto = \"hours:kantor\"\n",
        );
        let users = Users(&["201"]);
        let mailbox = Destination::Voicemail {
            mailbox: Extension("201".into()),
            greeting: crate::routing::VoicemailGreeting::Unavailable,
        };
        let to = |n: &str, at: i64| {
            p.resolve_inbound(n, &trunk("provider"), &users, at)
                .unwrap()
                .destination
        };
        assert_eq!(to("+62215550100", 0), mailbox);
        // Wednesday 2026-12-02 10:00 UTC: open; 20:00: closed.
        assert_eq!(
            to("+62215550101", 1_796_205_600),
            Destination::Extension(Extension("201".into()))
        );
        assert_eq!(to("+62215550101", 1_796_241_600), mailbox);
    }

    #[test]
    fn an_unlisted_number_is_refused_even_if_it_is_an_extension_or_public() {
        let p = plan("[[did]]\nnumber = \"+62215550100\"\nto = \"201\"\n");
        let users = Users(&["201"]);
        for n in ["201", "081234567890", "+6281234567890", "112", "*72201", ""] {
            assert!(
                matches!(
                    p.resolve_inbound(n, &trunk("provider"), &users, 0),
                    Err(InboundRefusal::UnknownDid { .. })
                ),
                "{n}"
            );
        }
    }

    #[test]
    fn a_did_bound_to_a_trunk_is_only_for_calls_from_it() {
        let p = plan(
            "[[did]]\nnumber = \"+62215550100\"\nto = \"201\"\ntrunk = \"provider\"\n\
             [[did]]\nnumber = \"+62215550100\"\nto = \"202\"\n\
             [[did]]\nnumber = \"+62215550199\"\nto = \"201\"\ntrunk = \"provider\"\n",
        );
        let users = Users(&["201", "202"]);
        let to = |n: &str, t: &str| {
            p.resolve_inbound(n, &trunk(t), &users, 0)
                .map(|c| c.destination)
                .ok()
        };
        let ext = |e: &str| Some(Destination::Extension(Extension(e.into())));
        assert_eq!(to("+62215550100", "provider"), ext("201"));
        assert_eq!(to("+62215550100", "other"), ext("202"));
        assert_eq!(to("+62215550199", "other"), None);
    }

    #[test]
    fn a_did_to_a_feature_code_or_a_missing_extension_is_not_served() {
        let p = plan(
            "[[did]]\nnumber = \"+62215550100\"\nto = \"*78\"\n\
             [[did]]\nnumber = \"+62215550101\"\nto = \"299\"\n",
        );
        let users = Users(&["201"]);
        for n in ["+62215550100", "+62215550101"] {
            assert!(matches!(
                p.resolve_inbound(n, &trunk("provider"), &users, 0),
                Err(InboundRefusal::NotServed { .. })
            ));
        }
    }
}
