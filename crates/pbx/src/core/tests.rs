#![allow(clippy::unwrap_used)]

use super::calls::session_expires;
use super::*;
use crate::store::Binding;
use kentongan_sip::transaction::Transmit;

fn invite(extra: &str) -> Request {
    Request::parse(format!(
        "INVITE sip:202@pbx.local SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx\r\n\
         From: <sip:201@pbx.local>;tag=a\r\nTo: <sip:202@pbx.local>\r\nCall-ID: c\r\n\
         CSeq: 1 INVITE\r\n{extra}Content-Length: 0\r\n\r\n"
    ))
    .unwrap()
}

#[test]
fn session_timer_needs_support_and_respects_the_minimum() {
    assert_eq!(session_expires(&invite("")), None);
    assert_eq!(session_expires(&invite("Session-Expires: 1800\r\n")), None);
    let r = invite("Supported: replaces, timer\r\nSession-Expires: 1800;refresher=uac\r\n");
    assert_eq!(session_expires(&r), Some(1800));
    let r = invite("Supported: timer\r\nSession-Expires: 30\r\n");
    assert_eq!(session_expires(&r), Some(90));
}

#[test]
fn registry_expires_and_replaces_contacts() {
    let mut reg = Registry::default();
    let ext = Extension("201".into());
    let b = |contact: &str, exp| Binding {
        extension: ext.clone(),
        contact: contact.into(),
        source: "192.0.2.1:5060".into(),
        transport: "udp".into(),
        expires_at: exp,
        call_id: "c".into(),
        cseq: 1,
    };
    assert!(
        reg.insert(b("sip:201@192.0.2.1", 100)),
        "a new binding is news"
    );
    assert!(!reg.insert(b("sip:201@192.0.2.1", 200)), "a refresh is not");
    assert!(reg.insert(b("sip:201@192.0.2.9", 150)));
    assert_eq!(reg.count(), 2);
    let mut moved = b("sip:201@192.0.2.9", 150);
    moved.source = "192.0.2.2:5060".into();
    assert!(reg.insert(moved), "a binding from another address is news");
    assert_eq!(reg.count(), 2);
    assert_eq!(reg.contacts(&ext, 120).len(), 2);
    assert!(reg.expire(160));
    assert_eq!(reg.count(), 1);
    assert_eq!(reg.contacts(&ext, 0)[0].expires_at, 200);
    reg.remove(&ext, Some("sip:201@192.0.2.7"));
    assert_eq!(reg.count(), 1);
    reg.remove(&ext, None);
    assert_eq!(reg.count(), 0);
}

/// A core on a fresh database with extensions 201 and 202. Tests drive it without a
/// flush to see what it does before a batch's writes are committed.
struct Rig {
    pbx: Pbx,
    dir: std::path::PathBuf,
    clock: Clock,
    cseq: u32,
    /// The last authenticated request sent, to resend.
    last_authenticated: Bytes,
}

impl Rig {
    fn new(name: &str) -> Rig {
        Rig::with(name, |_| String::new())
    }

    /// [`Rig::new`] with more configuration, written knowing the rig's folder.
    fn with(name: &str, extra: impl Fn(&std::path::Path) -> String) -> Rig {
        let dir =
            std::env::temp_dir().join(format!("kentongan-pbx-core-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("pbx.db");
        let config = Config::from_toml(&format!(
            "[sip]\ndomain = \"pbx.local\"\nlisten = [\"udp:127.0.0.1:5060\"]\n\
             [rtp]\nports = \"40000-40099\"\n[storage]\ndatabase = \"{}\"\n\
             [metrics]\nlisten = \"127.0.0.1:0\"\n{}",
            db.display(),
            extra(&dir)
        ))
        .unwrap();
        let store = Store::open(&db).unwrap();
        for ext in ["201", "202"] {
            let e = Extension::parse(ext).unwrap();
            store
                .add_user(&e, ext, "pbx.local", &format!("pw-of-{ext}"))
                .unwrap();
        }
        drop(store);
        let clock = Clock {
            now: Instant::now(),
            unix_ms: 1_800_000_000_000,
        };
        let pbx = Rig::start(config, clock);
        Rig {
            pbx,
            dir,
            clock,
            cseq: 0,
            last_authenticated: Bytes::new(),
        }
    }

    /// A core on the database `config` names, as the daemon starts one.
    fn start(config: Config, clock: Clock) -> Pbx {
        let store = Store::open(&config.database).unwrap();
        Pbx::new(PbxInit {
            config,
            store,
            metrics: Arc::default(),
            secret: [7; 32],
            seed: 1,
            clock,
            media_notify: Arc::new(|| {}),
        })
        .unwrap()
    }

    /// What is committed survives: a new core on the same database, as after `kill -9`.
    fn restart(&mut self) {
        self.pbx.flush(self.clock).unwrap();
        let config = self.pbx.config.clone();
        self.pbx = Rig::start(config, self.clock);
    }

    fn phone(ext: &str) -> SocketAddr {
        format!("127.0.0.{}:5070", &ext[2..]).parse().unwrap()
    }

    /// Sends `method` from `ext`'s phone, answers the challenge, and returns everything
    /// the core sent after the authenticated request.
    fn send(&mut self, ext: &str, method: &str, to: &str, extra: &str) -> Vec<Transmit> {
        let phone = Rig::phone(ext);
        let uri = format!("sip:{to}@pbx.local");
        let call_id = format!("{ext}-{method}-{}", self.cseq);
        let mut auth = String::new();
        for round in 0..2 {
            self.cseq += 1;
            let text = format!(
                "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {phone};branch=z9hG4bK{}{round}\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:{ext}@pbx.local>;tag=t{ext}\r\n\
                 To: <sip:{to}@pbx.local>\r\nCall-ID: {call_id}\r\nCSeq: {} {method}\r\n\
                 Contact: <sip:{ext}@{phone}>\r\n{auth}{extra}",
                self.cseq, self.cseq
            );
            let text = Bytes::from(text);
            if round == 1 {
                self.last_authenticated = text.clone();
            }
            self.pbx.handle_datagram_bytes(self.clock, phone, text);
            let sent: Vec<Transmit> = std::iter::from_fn(|| self.pbx.poll_transmit()).collect();
            if round == 1 {
                return sent;
            }
            let challenge = sent
                .iter()
                .filter_map(|t| Response::parse(t.bytes.clone()).ok())
                .find_map(|r| {
                    let (name, header) = match r.status.0 {
                        401 => ("Authorization", HeaderName::WwwAuthenticate),
                        407 => ("Proxy-Authorization", HeaderName::ProxyAuthenticate),
                        _ => return None,
                    };
                    let ch =
                        kentongan_sip::auth::Challenge::parse(r.headers.get_str(&header)?).ok()?;
                    Some((name, ch))
                })
                .expect("a challenge");
            let creds = kentongan_sip::auth::respond(
                &challenge.1,
                ext,
                &format!("pw-of-{ext}"),
                &method.parse::<Method>().unwrap(),
                &uri,
                "c0ffee",
                1,
            );
            auth = format!("{}: {creds}\r\n", challenge.0);
        }
        unreachable!()
    }

    fn register(&mut self, ext: &str) -> Vec<Transmit> {
        self.send(
            ext,
            "REGISTER",
            ext,
            "Expires: 600\r\nContent-Length: 0\r\n\r\n",
        )
    }

    fn message(&mut self, from: &str, to: &str, text: &str) -> Vec<Transmit> {
        let extra = format!(
            "Content-Type: text/plain\r\nContent-Length: {}\r\n\r\n{text}",
            text.len()
        );
        self.send(from, "MESSAGE", to, &extra)
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn stored_messages_survive_a_restart_and_are_delivered_in_order() {
    let mut b = Rig::new("restart");
    b.message("201", "202", "first");
    b.message("201", "202", "second");
    b.restart();
    let phone = Rig::phone("202");
    let sent = b.register("202");
    let bodies: Vec<Vec<u8>> = requests_to(&sent, phone, "MESSAGE")
        .iter()
        .map(|m| m.body.to_vec())
        .collect();
    assert_eq!(bodies, [b"first".to_vec(), b"second".to_vec()]);
}

#[test]
fn a_resend_that_outlives_its_transaction_is_rechallenged_not_a_password_failure() {
    let mut b = Rig::new("resend");
    let phone = Rig::phone("201");
    let sent = b.register("201");
    assert!(sent.iter().any(|t| t.bytes.starts_with(b"SIP/2.0 200")));
    b.pbx.flush(b.clock).unwrap();
    // Timer J has gone (or a storm evicted the entry): the phone resends, again and
    // again, more often than the shield forgives wrong passwords.
    b.clock.now += Duration::from_secs(33);
    b.pbx.handle_timeout(b.clock);
    let resend = b.last_authenticated.clone();
    for _ in 0..30 {
        b.pbx.handle_datagram_bytes(b.clock, phone, resend.clone());
        let answers: Vec<Transmit> = std::iter::from_fn(|| b.pbx.poll_transmit()).collect();
        let resp = answers
            .iter()
            .find_map(|t| Response::parse(t.bytes.clone()).ok())
            .expect("an answer");
        assert_eq!(resp.status.0, 401);
        let challenge = resp.headers.get_str(&HeaderName::WwwAuthenticate).unwrap();
        assert!(
            challenge.to_ascii_lowercase().contains("stale=true"),
            "{challenge}"
        );
    }
    assert_eq!(b.pbx.shield.active_bans(), 0, "the phone was banned");
    assert_eq!(b.pbx.metrics.auth_failures.load(Ordering::Relaxed), 0);
}

fn requests_to(sent: &[Transmit], to: SocketAddr, method: &str) -> Vec<Request> {
    sent.iter()
        .filter(|t| t.to == to)
        .filter_map(|t| Request::parse(t.bytes.clone()).ok())
        .filter(|r| r.method.as_str() == method)
        .collect()
}

#[test]
fn a_message_stored_moments_before_its_recipient_registers_is_delivered_once() {
    let mut b = Rig::new("mailbox");
    let sent = b.message("201", "202", "lunch?");
    assert!(
        sent.iter()
            .filter_map(|t| Response::parse(t.bytes.clone()).ok())
            .any(|r| r.status.0 == 202),
        "the message is accepted for an offline extension"
    );
    // No flush: its write is not in the database yet when 202 registers.
    let phone = Rig::phone("202");
    let sent = b.register("202");
    let delivered = requests_to(&sent, phone, "MESSAGE");
    assert_eq!(delivered.len(), 1, "delivered on registration");
    assert_eq!(&delivered[0].body[..], b"lunch?");

    // The phone takes it; registering again (still unflushed) must not deliver it again.
    let ok = Response::for_request(&delivered[0], StatusCode::OK, Some("p"));
    b.pbx.handle_datagram_bytes(b.clock, phone, ok.to_bytes());
    let _ = std::iter::from_fn(|| b.pbx.poll_transmit()).count();
    let sent = b.register("202");
    assert!(requests_to(&sent, phone, "MESSAGE").is_empty());

    // And what is committed agrees: stored, then deleted.
    b.pbx.flush(b.clock).unwrap();
    assert!(b.pbx.store.messages().unwrap().is_empty());
}

/// 201 with forwards to 203; 202 calls 201. Returns the rig and the INVITE 201's phone got.
fn forwarding_rig(name: &str, kind: crate::store::ForwardKind) -> (Rig, Request) {
    use crate::store::SettingsWrite;
    let mut b = Rig::new(name);
    b.pbx
        .store
        .add_user(&Extension("203".into()), "203", "pbx.local", "pw-of-203")
        .unwrap();
    for ext in ["201", "202", "203"] {
        b.register(ext);
    }
    b.pbx.change_setting(SettingsWrite::Forward {
        extension: Extension("201".into()),
        kind,
        target: Some("203".into()),
    });
    let sent = b.send("202", "INVITE", "201", "Content-Length: 0\r\n\r\n");
    let invites = requests_to(&sent, Rig::phone("201"), "INVITE");
    assert_eq!(invites.len(), 1, "201 rings first");
    (b, invites[0].clone())
}

fn drain(b: &mut Rig) -> Vec<Transmit> {
    std::iter::from_fn(|| b.pbx.poll_transmit()).collect()
}

fn statuses_to(sent: &[Transmit], to: SocketAddr) -> Vec<u16> {
    sent.iter()
        .filter(|t| t.to == to)
        .filter_map(|t| Response::parse(t.bytes.clone()).ok())
        .map(|r| r.status.0)
        .collect()
}

#[test]
fn a_busy_callee_hands_the_call_to_its_busy_forward_and_then_the_caller_hears_busy() {
    let (mut b, invite) = forwarding_rig("cfb", crate::store::ForwardKind::Busy);
    let busy = Response::for_request(&invite, StatusCode::BUSY_HERE, Some("b1"));
    b.pbx
        .handle_datagram_bytes(b.clock, Rig::phone("201"), busy.to_bytes());
    let sent = drain(&mut b);
    let to_203 = requests_to(&sent, Rig::phone("203"), "INVITE");
    assert_eq!(to_203.len(), 1, "the busy forward rings 203");
    assert_ne!(
        to_203[0].headers.call_id().unwrap(),
        invite.headers.call_id().unwrap(),
        "a new callee leg"
    );
    assert!(
        !statuses_to(&sent, Rig::phone("202")).contains(&486),
        "the caller is not told busy while 203 rings"
    );
    // 203 is busy too and has no forward of its own: now the caller hears 486.
    let busy = Response::for_request(&to_203[0], StatusCode::BUSY_HERE, Some("b2"));
    b.pbx
        .handle_datagram_bytes(b.clock, Rig::phone("203"), busy.to_bytes());
    let sent = drain(&mut b);
    assert!(statuses_to(&sent, Rig::phone("202")).contains(&486));
    assert!(b.pbx.calls.is_empty());
}

#[test]
fn an_unanswered_call_moves_to_the_no_answer_forward_after_its_time() {
    let (mut b, _invite) = forwarding_rig("cfna", crate::store::ForwardKind::NoAnswer);
    // 19 s: still ringing 201 only.
    b.clock.now += Duration::from_secs(19);
    b.pbx.handle_timeout(b.clock);
    let sent = drain(&mut b);
    assert!(requests_to(&sent, Rig::phone("203"), "INVITE").is_empty());
    // Past the default 20 s: 201 is cancelled and 203 rings.
    b.clock.now += Duration::from_secs(2);
    b.pbx.handle_timeout(b.clock);
    let sent = drain(&mut b);
    assert_eq!(requests_to(&sent, Rig::phone("201"), "CANCEL").len(), 1);
    assert_eq!(requests_to(&sent, Rig::phone("203"), "INVITE").len(), 1);
    let to_caller = statuses_to(&sent, Rig::phone("202"));
    // (The unacknowledged 407 of the first INVITE is still being retransmitted.)
    assert!(
        !to_caller
            .iter()
            .any(|s| matches!(s, 200 | 408 | 480 | 486 | 487)),
        "the caller keeps ringing: {to_caller:?}"
    );
}

/// 201 (rights: 1 minute) calls a mobile number; the trunk at 192.0.2.50 challenges the INVITE
/// and answers the one with credentials. Returns the rig and the answered INVITE.
fn trunk_call_rig() -> (Rig, Request) {
    let mut b = Rig::with("trunk", |dir| {
        let rates = dir.join("rates.csv");
        std::fs::write(&rates, "out,+62,650,0,60\n").unwrap();
        format!(
            "[[trunk]]\nname = \"out\"\nkind = \"provider\"\naddress = \"192.0.2.50:5060\"\n\
             username = \"office1\"\npassword = \"trunk-pw\"\ncaller_id = \"+62215550100\"\n\
             [lcr]\nrates = \"{}\"\ncountry = \"62\"\n\
             [[calling_rights]]\nname = \"short\"\nallow = [\"mobile\"]\nmax_call_minutes = 1\n",
            rates.display()
        )
    });
    b.pbx
        .store
        .set_user_rights(&Extension("201".into()), Some("short"))
        .unwrap();
    let trunk: SocketAddr = "192.0.2.50:5060".parse().unwrap();
    let sent = b.send("201", "INVITE", "081234567890", "Content-Length: 0\r\n\r\n");
    let first = requests_to(&sent, trunk, "INVITE");
    assert_eq!(first.len(), 1, "the INVITE goes to the trunk");
    assert_eq!(
        first[0].uri.to_string(),
        "sip:+6281234567890@192.0.2.50:5060"
    );
    assert!(first[0]
        .headers
        .get_str(&HeaderName::From)
        .unwrap()
        .starts_with("<sip:+62215550100@192.0.2.50>"));
    let mut challenge = Response::for_request(&first[0], StatusCode(407), Some("p1"));
    challenge.headers.push(
        HeaderName::ProxyAuthenticate,
        "Digest realm=\"provider\", nonce=\"n1\", qop=\"auth\"",
    );
    b.pbx
        .handle_datagram_bytes(b.clock, trunk, challenge.to_bytes());
    let sent = drain(&mut b);
    assert_eq!(
        requests_to(&sent, trunk, "ACK").len(),
        1,
        "the 407 is ACKed"
    );
    let second = requests_to(&sent, trunk, "INVITE");
    assert_eq!(second.len(), 1, "sent again with credentials");
    assert_eq!(second[0].headers.cseq().unwrap().seq, 2);
    let creds = kentongan_sip::auth::Credentials::parse(
        second[0]
            .headers
            .get_str(&HeaderName::ProxyAuthorization)
            .unwrap(),
    )
    .unwrap();
    let want = kentongan_sip::auth::respond(
        &kentongan_sip::auth::Challenge::parse(
            "Digest realm=\"provider\", nonce=\"n1\", qop=\"auth\"",
        )
        .unwrap(),
        "office1",
        "trunk-pw",
        &Method::Invite,
        &second[0].uri.to_string(),
        creds.cnonce.as_deref().unwrap(),
        1,
    );
    assert_eq!(creds, want);
    let mut ok = Response::for_request(&second[0], StatusCode::OK, Some("p2"));
    ok.headers
        .push(HeaderName::Contact, "<sip:provider@192.0.2.50:5060>");
    b.pbx.handle_datagram_bytes(b.clock, trunk, ok.to_bytes());
    (b, second[0].clone())
}

#[test]
fn a_trunk_call_is_authenticated_acked_with_its_cseq_and_cut_at_max_call_minutes() {
    let (mut b, _invite) = trunk_call_rig();
    let trunk: SocketAddr = "192.0.2.50:5060".parse().unwrap();
    let sent = drain(&mut b);
    let acks = requests_to(&sent, trunk, "ACK");
    assert_eq!(acks.len(), 1, "the 2xx is ACKed");
    assert_eq!(
        acks[0].headers.cseq().unwrap().seq,
        2,
        "with the INVITE's CSeq"
    );
    let answer = sent
        .iter()
        .filter(|t| t.to == Rig::phone("201"))
        .filter_map(|t| Response::parse(t.bytes.clone()).ok())
        .find(|r| r.status.0 == 200)
        .expect("201 gets the 200");
    // 201's phone ACKs it, so the 2xx stops being resent.
    let ack = format!(
        "ACK sip:pbx@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bKack\r\n\
         Max-Forwards: 70\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {} ACK\r\n\
         Content-Length: 0\r\n\r\n",
        Rig::phone("201"),
        answer.headers.get_str(&HeaderName::From).unwrap(),
        answer.headers.get_str(&HeaderName::To).unwrap(),
        answer.headers.call_id().unwrap(),
        answer.headers.cseq().unwrap().seq
    );
    b.pbx
        .handle_datagram_bytes(b.clock, Rig::phone("201"), Bytes::from(ack));
    drain(&mut b);
    // 59 s in: still up. Past a minute: BYE to both sides, and the CDR is costed.
    b.clock.now += Duration::from_secs(59);
    b.clock.unix_ms += 59_000;
    b.pbx.handle_timeout(b.clock);
    let sent = drain(&mut b);
    assert!(requests_to(&sent, trunk, "BYE").is_empty());
    b.clock.now += Duration::from_secs(2);
    b.clock.unix_ms += 2_000;
    b.pbx.handle_timeout(b.clock);
    let sent = drain(&mut b);
    assert_eq!(requests_to(&sent, trunk, "BYE").len(), 1);
    assert_eq!(requests_to(&sent, Rig::phone("201"), "BYE").len(), 1);
    assert!(b.pbx.calls.is_empty());
    b.pbx.flush(b.clock).unwrap();
    let cdr = b.pbx.store.cdrs().unwrap().pop().unwrap();
    let out = cdr.outbound.unwrap();
    assert_eq!(out.trunk.as_deref(), Some("out"));
    assert_eq!(out.number, "+6281234567890");
    // 61 s billed by the minute: two minutes at 650.
    assert_eq!(out.cost.map(|m| m.to_string()).as_deref(), Some("1300.00"));
}

const OFFER: &str = "Content-Type: application/sdp\r\nContent-Length: 149\r\n\r\n\
v=0\r\no=- 1 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\n\
m=audio 49170 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n";

/// A 200 with SDP to the caller from the PBX itself (voicemail answered), for a call not in
/// `earlier` (whose 200s are resent until an ACK): its Call-ID and To tag.
fn answered_by_pbx(
    sent: &[Transmit],
    caller: SocketAddr,
    earlier: &[String],
) -> Option<(String, String)> {
    sent.iter()
        .filter(|t| t.to == caller)
        .filter_map(|t| Response::parse(t.bytes.clone()).ok())
        .filter(|r| r.status.0 == 200 && r.body.starts_with(b"v=0"))
        .filter(|r| r.headers.cseq().is_ok_and(|c| c.method == Method::Invite))
        .filter_map(|r| {
            let call_id = r.headers.call_id().ok()?.to_owned();
            let tag = r.headers.to_tag().ok().flatten()?.to_owned();
            Some((call_id, tag))
        })
        .find(|(c, _)| !earlier.contains(c))
}

#[test]
fn with_voicemail_busy_and_unanswered_calls_are_answered_by_the_mailbox() {
    assert_eq!(OFFER.split("\r\n\r\n").nth(1).unwrap().len(), 149);
    let mut b = Rig::with("vm", |_| "[voicemail]\nring_seconds = 5\n".into());
    b.register("201");
    let caller = Rig::phone("202");
    // Busy: 201's phone answers 486, the caller is answered by voicemail.
    let sent = b.send("202", "INVITE", "201", OFFER);
    let invite = requests_to(&sent, Rig::phone("201"), "INVITE").remove(0);
    let busy = Response::for_request(&invite, StatusCode::BUSY_HERE, Some("b1"));
    b.pbx
        .handle_datagram_bytes(b.clock, Rig::phone("201"), busy.to_bytes());
    let sent = drain(&mut b);
    let (first, _) = answered_by_pbx(&sent, caller, &[]).expect("busy did not reach voicemail");
    assert!(!statuses_to(&sent, caller).contains(&486));
    assert!(b.pbx.calls.is_empty(), "the ringing call is gone");
    assert_eq!(b.pbx.apps.count(), 1, "voicemail holds the caller");

    // Unanswered: after ring_seconds 201 is cancelled and the caller is answered under the
    // To tag of the ringing it heard.
    let sent = b.send("202", "INVITE", "201", OFFER);
    let invite = requests_to(&sent, Rig::phone("201"), "INVITE").remove(0);
    let ringing = Response::for_request(&invite, StatusCode(180), Some("r1"));
    b.pbx
        .handle_datagram_bytes(b.clock, Rig::phone("201"), ringing.to_bytes());
    let sent = drain(&mut b);
    let tag_180 = sent
        .iter()
        .filter(|t| t.to == caller)
        .filter_map(|t| Response::parse(t.bytes.clone()).ok())
        .find(|r| r.status.0 == 180)
        .and_then(|r| r.headers.to_tag().ok().flatten().map(str::to_owned))
        .expect("180 relayed to the caller");
    b.clock.now += Duration::from_secs(4);
    b.pbx.handle_timeout(b.clock);
    let earlier = [first];
    assert!(
        answered_by_pbx(&drain(&mut b), caller, &earlier).is_none(),
        "too early"
    );
    b.clock.now += Duration::from_secs(2);
    b.pbx.handle_timeout(b.clock);
    let sent = drain(&mut b);
    assert_eq!(requests_to(&sent, Rig::phone("201"), "CANCEL").len(), 1);
    let (second, tag) = answered_by_pbx(&sent, caller, &earlier).expect("no answer by voicemail");
    assert_eq!(tag, tag_180);
    let earlier = [earlier[0].clone(), second];

    // Nobody registered: straight to voicemail, nothing rings.
    let sent = b.send("201", "INVITE", "202", OFFER);
    assert!(answered_by_pbx(&sent, Rig::phone("201"), &earlier).is_some());
    assert!(requests_to(&sent, Rig::phone("202"), "INVITE").is_empty());
    b.pbx.shutdown_answered(b.clock);
}

/// 201 may call abroad, for 10 international minutes a day under `[fraud]`, and has already
/// talked for `used_s` seconds today.
fn international_rig(name: &str, used_s: f64) -> Rig {
    let mut b = Rig::with(name, |dir| {
        let rates = dir.join("rates.csv");
        std::fs::write(&rates, "out,+,900,0,60\n").unwrap();
        format!(
            "[[trunk]]\nname = \"out\"\nkind = \"provider\"\naddress = \"192.0.2.50:5060\"\n\
             [lcr]\nrates = \"{}\"\ncountry = \"62\"\n\
             [[calling_rights]]\nname = \"abroad\"\nallow = [\"international\"]\n\
             [fraud]\nmax_international_minutes_per_day_per_extension = 10\n",
            rates.display()
        )
    });
    b.pbx
        .store
        .set_user_rights(&Extension("201".into()), Some("abroad"))
        .unwrap();
    let start_ms = b.clock.unix_ms - 3_600_000;
    let mut cdr = Cdr::refused(
        "earlier".into(),
        "201".into(),
        "0065".into(),
        start_ms,
        "answered",
    );
    cdr.answer_ms = Some(start_ms);
    cdr.duration_s = used_s;
    cdr.outbound = Some(OutboundCdr {
        trunk: Some("out".into()),
        number: "+6512345678".into(),
        class: "international".into(),
        cost: None,
    });
    b.pbx
        .store
        .apply(&[Write::Cdr(cdr)], b.clock.unix_ms)
        .unwrap();
    b
}

#[test]
fn international_minutes_used_up_today_refuse_the_call_and_what_is_left_limits_it() {
    let trunk: SocketAddr = "192.0.2.50:5060".parse().unwrap();
    // 9.5 of 10 minutes used: less than a minute left, refused with the cap named.
    let mut b = international_rig("intl-used", 570.0);
    let sent = b.send("201", "INVITE", "006512345678", "Content-Length: 0\r\n\r\n");
    assert!(requests_to(&sent, trunk, "INVITE").is_empty());
    let refusal = sent
        .iter()
        .filter_map(|t| Response::parse(t.bytes.clone()).ok())
        .find(|r| r.status.0 == 403)
        .expect("403");
    assert!(
        refusal.reason.contains("international minutes"),
        "{}",
        refusal.reason
    );
    assert_eq!(b.pbx.metrics.fraud_cap_trips[3].load(Ordering::Relaxed), 1);
    // 6 minutes used: the call goes out, to be cut after the 4 minutes left.
    let mut b = international_rig("intl-left", 360.0);
    let sent = b.send("201", "INVITE", "006512345678", "Content-Length: 0\r\n\r\n");
    assert_eq!(requests_to(&sent, trunk, "INVITE").len(), 1);
    let leg = b.pbx.calls.values().find_map(|c| c.trunk.as_ref()).unwrap();
    assert_eq!(leg.call.max_call_minutes, Some(4));
}

#[test]
fn a_reload_that_changes_the_mail_relay_says_it_needs_a_restart() {
    let mut b = Rig::with("vm-reload", |_| "[voicemail]\n".into());
    let with_relay = |b: &Rig, smtp: &str| {
        let mut c = b.pbx.config.clone();
        let vm = c.voicemail.as_mut().unwrap();
        vm.smtp = Some(crate::config::SmtpRelay {
            security: crate::config::SmtpSecurity::Plain,
            host: "127.0.0.1".into(),
            port: smtp.parse().unwrap(),
            ca: None,
        });
        vm.from = Some("pbx@kantor.local".into());
        c
    };
    // Voicemail settings without a relay take effect at once.
    let mut plain = b.pbx.config.clone();
    plain.voicemail.as_mut().unwrap().ring_seconds = 9;
    assert!(b.pbx.reload(plain, [7; 32], b.clock).is_empty());
    // The sender thread is started with the relay: adding or changing one needs a restart.
    let c = with_relay(&b, "25");
    assert_eq!(b.pbx.reload(c, [7; 32], b.clock), ["voicemail.smtp"]);
    let c = with_relay(&b, "25");
    assert!(b.pbx.reload(c, [7; 32], b.clock).is_empty());
    let c = with_relay(&b, "2525");
    assert_eq!(b.pbx.reload(c, [7; 32], b.clock), ["voicemail.smtp"]);
}
