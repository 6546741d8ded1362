//! SDP (RFC 4566) parsing and serialization, and the offer/answer model (RFC 3264) for the
//! codecs a PBX needs: PCMU, PCMA, opus, telephone-event, H264 and VP8.

use std::fmt;
use std::net::IpAddr;

/// An SDP parse error, naming the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("SDP line {line}: {reason}")]
    Line { line: usize, reason: &'static str },
    #[error("SDP is missing the {0} line")]
    Missing(&'static str),
    #[error("SDP is not UTF-8")]
    NotUtf8,
    #[error("no common codec for any offered stream")]
    NoCommonCodec,
}

/// `c=` connection data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub net_type: String,
    pub addr_type: String,
    pub address: String,
}

impl Connection {
    pub fn from_ip(ip: IpAddr) -> Connection {
        Connection {
            net_type: "IN".into(),
            addr_type: if ip.is_ipv4() { "IP4" } else { "IP6" }.into(),
            address: ip.to_string(),
        }
    }

    fn parse(v: &str) -> Option<Connection> {
        let mut it = v.split(' ');
        let c = Connection {
            net_type: it.next()?.to_owned(),
            addr_type: it.next()?.to_owned(),
            address: it.next()?.to_owned(),
        };
        if it.next().is_some() || c.address.is_empty() {
            return None;
        }
        Some(c)
    }

    /// `c=IN IP4 0.0.0.0` is the RFC 2543 way to put a call on hold.
    pub fn is_null(&self) -> bool {
        self.address == "0.0.0.0"
    }
}

impl fmt::Display for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.net_type, self.addr_type, self.address)
    }
}

/// `o=` origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub username: String,
    pub session_id: String,
    pub session_version: u64,
    pub connection: Connection,
}

/// `a=name[:value]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub name: String,
    pub value: Option<String>,
}

/// Media direction attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    fn parse(s: &str) -> Option<Direction> {
        Some(match s {
            "sendrecv" => Direction::SendRecv,
            "sendonly" => Direction::SendOnly,
            "recvonly" => Direction::RecvOnly,
            "inactive" => Direction::Inactive,
            _ => return None,
        })
    }

    /// The direction an answerer uses for an offer with this direction (RFC 3264 §6.1).
    pub fn reversed(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            d => d,
        }
    }

    /// Combines with what we are willing to do (e.g. our own hold).
    pub fn intersect(self, other: Direction) -> Direction {
        let send = self.sends() && other.sends();
        let recv = self.receives() && other.receives();
        match (send, recv) {
            (true, true) => Direction::SendRecv,
            (true, false) => Direction::SendOnly,
            (false, true) => Direction::RecvOnly,
            (false, false) => Direction::Inactive,
        }
    }

    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }
}

/// One `m=` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    pub kind: String,
    pub port: u16,
    pub port_count: Option<u16>,
    pub proto: String,
    pub formats: Vec<String>,
    pub connection: Option<Connection>,
    /// Other lines (`i=`, `b=`, `k=`) in received order.
    pub lines: Vec<(char, String)>,
    pub attributes: Vec<Attribute>,
}

impl Media {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|a| a.name == name)
            .and_then(|a| a.value.as_deref())
    }

    /// The explicit direction attribute of this section, if any.
    pub fn direction_attr(&self) -> Option<Direction> {
        self.attributes
            .iter()
            .find_map(|a| Direction::parse(&a.name))
    }

    pub fn set_direction(&mut self, d: Direction) {
        self.attributes
            .retain(|a| Direction::parse(&a.name).is_none());
        self.attributes.push(Attribute {
            name: d.as_str().into(),
            value: None,
        });
    }

    /// `(payload type, codec)` for each format, resolving rtpmap and fmtp.
    pub fn codecs(&self) -> Vec<(u8, Codec)> {
        let mut out = Vec::new();
        for f in &self.formats {
            let Ok(pt) = f.parse::<u8>() else { continue };
            let rtpmap = self.attributes.iter().find_map(|a| {
                let v = a.value.as_deref()?;
                let (p, rest) = v.split_once(' ')?;
                (a.name == "rtpmap" && p == f).then_some(rest)
            });
            let fmtp = self.attributes.iter().find_map(|a| {
                let v = a.value.as_deref()?;
                let (p, rest) = v.split_once(' ')?;
                (a.name == "fmtp" && p == f).then(|| rest.to_owned())
            });
            let codec = match rtpmap {
                Some(m) => {
                    let mut parts = m.split('/');
                    let name = parts.next().unwrap_or("").to_owned();
                    let clock = parts.next().and_then(|c| c.parse().ok()).unwrap_or(8000);
                    let channels = parts.next().and_then(|c| c.parse().ok());
                    Codec {
                        name,
                        clock,
                        channels,
                        fmtp,
                    }
                }
                None => match Codec::static_payload(pt) {
                    Some(mut c) => {
                        c.fmtp = fmtp;
                        c
                    }
                    None => continue,
                },
            };
            out.push((pt, codec));
        }
        out
    }
}

/// A codec as negotiated: encoding name, clock rate, channels, format parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Codec {
    pub name: String,
    pub clock: u32,
    pub channels: Option<u8>,
    pub fmtp: Option<String>,
}

impl Codec {
    fn new(name: &str, clock: u32, channels: Option<u8>, fmtp: Option<&str>) -> Codec {
        Codec {
            name: name.into(),
            clock,
            channels,
            fmtp: fmtp.map(Into::into),
        }
    }

    pub fn pcmu() -> Codec {
        Codec::new("PCMU", 8000, None, None)
    }
    pub fn pcma() -> Codec {
        Codec::new("PCMA", 8000, None, None)
    }
    pub fn opus() -> Codec {
        Codec::new("opus", 48000, Some(2), Some("useinbandfec=1"))
    }
    pub fn telephone_event() -> Codec {
        Codec::new("telephone-event", 8000, None, Some("0-16"))
    }
    pub fn h264() -> Codec {
        Codec::new(
            "H264",
            90000,
            None,
            Some("profile-level-id=42e01f;packetization-mode=1"),
        )
    }
    pub fn vp8() -> Codec {
        Codec::new("VP8", 90000, None, None)
    }

    fn static_payload(pt: u8) -> Option<Codec> {
        match pt {
            0 => Some(Codec::pcmu()),
            8 => Some(Codec::pcma()),
            _ => None,
        }
    }

    fn static_pt(&self) -> Option<u8> {
        match (self.name.to_ascii_uppercase().as_str(), self.clock) {
            ("PCMU", 8000) => Some(0),
            ("PCMA", 8000) => Some(8),
            _ => None,
        }
    }

    fn fmtp_value(&self, key: &str) -> Option<&str> {
        self.fmtp.as_deref()?.split(';').find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            k.trim().eq_ignore_ascii_case(key).then(|| v.trim())
        })
    }

    /// Whether an offered codec can be answered with this local one.
    pub fn matches(&self, offered: &Codec) -> bool {
        if !self.name.eq_ignore_ascii_case(&offered.name) || self.clock != offered.clock {
            return false;
        }
        if self.name.eq_ignore_ascii_case("H264") {
            // Different packetization modes are different payload formats (RFC 6184 §8.1).
            let mode = |c: &Codec| c.fmtp_value("packetization-mode").unwrap_or("0").to_owned();
            return mode(self) == mode(offered);
        }
        true
    }
}

/// A session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sdp {
    pub origin: Origin,
    pub session_name: String,
    pub connection: Option<Connection>,
    /// Other session-level lines (`i u e p b t r z k`) in received order.
    pub lines: Vec<(char, String)>,
    pub attributes: Vec<Attribute>,
    pub media: Vec<Media>,
}

const MAX_MEDIA: usize = 64;

impl Sdp {
    pub fn parse(body: &[u8]) -> Result<Sdp, SdpError> {
        let text = std::str::from_utf8(body).map_err(|_| SdpError::NotUtf8)?;
        let mut origin = None;
        let mut session_name = None;
        let mut connection = None;
        let mut lines = Vec::new();
        let mut attributes = Vec::new();
        let mut media: Vec<Media> = Vec::new();
        let mut saw_version = false;
        for (i, raw) in text.split('\n').enumerate() {
            let line_no = i + 1;
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            if line.is_empty() {
                continue;
            }
            let err = |reason| SdpError::Line {
                line: line_no,
                reason,
            };
            let bytes = line.as_bytes();
            if bytes.len() < 2 || bytes[1] != b'=' || !bytes[0].is_ascii_lowercase() {
                return Err(err("expected <type>=<value>"));
            }
            let kind = bytes[0] as char;
            let value = &line[2..];
            if !saw_version {
                if kind != 'v' || value != "0" {
                    return Err(err("first line must be v=0"));
                }
                saw_version = true;
                continue;
            }
            match kind {
                'v' => return Err(err("duplicate v= line")),
                'o' => {
                    let p: Vec<&str> = value.split(' ').collect();
                    if p.len() != 6 {
                        return Err(err("o= needs six fields"));
                    }
                    origin = Some(Origin {
                        username: p[0].into(),
                        session_id: p[1].into(),
                        session_version: p[2].parse().map_err(|_| err("bad session version"))?,
                        connection: Connection {
                            net_type: p[3].into(),
                            addr_type: p[4].into(),
                            address: p[5].into(),
                        },
                    });
                }
                's' => session_name = Some(value.to_owned()),
                'm' => {
                    if media.len() >= MAX_MEDIA {
                        return Err(err("too many media sections"));
                    }
                    let mut p = value.split(' ');
                    let kind = p
                        .next()
                        .filter(|k| !k.is_empty())
                        .ok_or(err("empty m= line"))?;
                    let port_s = p.next().ok_or(err("m= without port"))?;
                    let (port, port_count) = match port_s.split_once('/') {
                        Some((a, b)) => (a, Some(b.parse().map_err(|_| err("bad port count"))?)),
                        None => (port_s, None),
                    };
                    let port = port.parse().map_err(|_| err("bad port"))?;
                    let proto = p.next().ok_or(err("m= without protocol"))?;
                    let formats: Vec<String> =
                        p.filter(|f| !f.is_empty()).map(Into::into).collect();
                    media.push(Media {
                        kind: kind.into(),
                        port,
                        port_count,
                        proto: proto.into(),
                        formats,
                        connection: None,
                        lines: Vec::new(),
                        attributes: Vec::new(),
                    });
                }
                'c' => {
                    let c = Connection::parse(value).ok_or(err("bad c= line"))?;
                    match media.last_mut() {
                        Some(m) => m.connection = Some(c),
                        None => connection = Some(c),
                    }
                }
                'a' => {
                    let (name, v) = match value.split_once(':') {
                        Some((n, v)) => (n, Some(v.to_owned())),
                        None => (value, None),
                    };
                    if name.is_empty() {
                        return Err(err("empty attribute name"));
                    }
                    let a = Attribute {
                        name: name.into(),
                        value: v,
                    };
                    match media.last_mut() {
                        Some(m) => m.attributes.push(a),
                        None => attributes.push(a),
                    }
                }
                'i' | 'u' | 'e' | 'p' | 'b' | 't' | 'r' | 'z' | 'k' => match media.last_mut() {
                    Some(m) => m.lines.push((kind, value.to_owned())),
                    None => lines.push((kind, value.to_owned())),
                },
                _ => return Err(err("unknown line type")),
            }
        }
        if !saw_version {
            return Err(SdpError::Missing("v="));
        }
        Ok(Sdp {
            origin: origin.ok_or(SdpError::Missing("o="))?,
            session_name: session_name.ok_or(SdpError::Missing("s="))?,
            connection,
            lines,
            attributes,
            media,
        })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }

    /// Session-level direction attribute (defaults to sendrecv).
    pub fn session_direction(&self) -> Direction {
        self.attributes
            .iter()
            .find_map(|a| Direction::parse(&a.name))
            .unwrap_or(Direction::SendRecv)
    }

    /// Effective direction of media section `i`.
    pub fn direction(&self, i: usize) -> Direction {
        self.media
            .get(i)
            .and_then(Media::direction_attr)
            .unwrap_or_else(|| self.session_direction())
    }

    /// Effective connection address of media section `i`.
    pub fn media_connection(&self, i: usize) -> Option<&Connection> {
        self.media
            .get(i)
            .and_then(|m| m.connection.as_ref())
            .or(self.connection.as_ref())
    }

    /// True if every active stream is on hold (sendonly/inactive, or c=0.0.0.0).
    pub fn is_hold(&self) -> bool {
        let active: Vec<usize> = (0..self.media.len())
            .filter(|i| self.media[*i].port != 0)
            .collect();
        !active.is_empty()
            && active.iter().all(|i| {
                !self.direction(*i).receives()
                    || self.media_connection(*i).is_some_and(Connection::is_null)
            })
    }

    /// Puts every stream on hold (RFC 3264 §8.4: sendonly, or inactive if it was recvonly).
    pub fn set_hold(&mut self, hold: bool) {
        for i in 0..self.media.len() {
            let current = self.direction(i);
            let d = if hold {
                current.intersect(Direction::SendOnly)
            } else {
                Direction::SendRecv
            };
            if let Some(m) = self.media.get_mut(i) {
                m.set_direction(d);
            }
        }
        self.attributes
            .retain(|a| Direction::parse(&a.name).is_none());
        self.origin.session_version = self.origin.session_version.wrapping_add(1);
    }

    /// Rewrites addresses and ports so media flows through a relay at `address`. `ports[i]`
    /// is the relay port for media section `i` (0 keeps a rejected stream rejected). ICE and
    /// explicit RTCP attributes are dropped because they describe the original endpoint.
    pub fn rewrite_for_relay(&mut self, address: IpAddr, ports: &[u16]) {
        let c = Connection::from_ip(address);
        self.connection = Some(c.clone());
        self.origin.connection = c;
        for (i, m) in self.media.iter_mut().enumerate() {
            m.connection = None;
            if m.port != 0 {
                if let Some(p) = ports.get(i) {
                    m.port = *p;
                }
            }
            m.attributes.retain(|a| {
                !matches!(
                    a.name.as_str(),
                    "rtcp"
                        | "candidate"
                        | "ice-ufrag"
                        | "ice-pwd"
                        | "ice-options"
                        | "end-of-candidates"
                )
            });
        }
    }
}

impl fmt::Display for Sdp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.origin;
        write!(
            f,
            "v=0\r\no={} {} {} {}\r\ns={}\r\n",
            o.username, o.session_id, o.session_version, o.connection, self.session_name
        )?;
        for (k, v) in self.lines.iter().filter(|(k, _)| "iuep".contains(*k)) {
            write!(f, "{k}={v}\r\n")?;
        }
        if let Some(c) = &self.connection {
            write!(f, "c={c}\r\n")?;
        }
        for (k, v) in self.lines.iter().filter(|(k, _)| !"iuep".contains(*k)) {
            write!(f, "{k}={v}\r\n")?;
        }
        if !self.lines.iter().any(|(k, _)| *k == 't') {
            f.write_str("t=0 0\r\n")?;
        }
        write_attrs(f, &self.attributes)?;
        for m in &self.media {
            write!(f, "m={} {}", m.kind, m.port)?;
            if let Some(n) = m.port_count {
                write!(f, "/{n}")?;
            }
            write!(f, " {}", m.proto)?;
            for fmt_ in &m.formats {
                write!(f, " {fmt_}")?;
            }
            f.write_str("\r\n")?;
            for (k, v) in m.lines.iter().filter(|(k, _)| *k == 'i') {
                write!(f, "{k}={v}\r\n")?;
            }
            if let Some(c) = &m.connection {
                write!(f, "c={c}\r\n")?;
            }
            for (k, v) in m.lines.iter().filter(|(k, _)| *k != 'i') {
                write!(f, "{k}={v}\r\n")?;
            }
            write_attrs(f, &m.attributes)?;
        }
        Ok(())
    }
}

fn write_attrs(f: &mut fmt::Formatter<'_>, attrs: &[Attribute]) -> fmt::Result {
    for a in attrs {
        match &a.value {
            Some(v) => write!(f, "a={}:{}\r\n", a.name, v)?,
            None => write!(f, "a={}\r\n", a.name)?,
        }
    }
    Ok(())
}

/// Local capabilities and addresses for building offers and answers.
#[derive(Debug, Clone)]
pub struct LocalMedia {
    pub address: IpAddr,
    pub session_id: u64,
    pub session_version: u64,
    pub audio_port: u16,
    pub video_port: Option<u16>,
    /// In preference order. telephone-event is answered whenever offered and listed here.
    pub audio_codecs: Vec<Codec>,
    pub video_codecs: Vec<Codec>,
    /// What we are willing to do (SendOnly when we put the call on hold).
    pub direction: Direction,
}

impl LocalMedia {
    pub fn new(address: IpAddr, audio_port: u16) -> LocalMedia {
        LocalMedia {
            address,
            session_id: 1,
            session_version: 1,
            audio_port,
            video_port: None,
            audio_codecs: vec![
                Codec::opus(),
                Codec::pcmu(),
                Codec::pcma(),
                Codec::telephone_event(),
            ],
            video_codecs: vec![Codec::h264(), Codec::vp8()],
            direction: Direction::SendRecv,
        }
    }

    fn base(&self) -> Sdp {
        let c = Connection::from_ip(self.address);
        Sdp {
            origin: Origin {
                username: "-".into(),
                session_id: self.session_id.to_string(),
                session_version: self.session_version,
                connection: c.clone(),
            },
            session_name: "-".into(),
            connection: Some(c),
            lines: vec![('t', "0 0".into())],
            attributes: Vec::new(),
            media: Vec::new(),
        }
    }

    /// Builds an offer with an audio stream and, if `video_port` is set, a video stream.
    pub fn offer(&self) -> Sdp {
        let mut sdp = self.base();
        sdp.media.push(build_media(
            "audio",
            self.audio_port,
            &self.audio_codecs,
            96,
            self.direction,
        ));
        if let Some(vp) = self.video_port {
            sdp.media.push(build_media(
                "video",
                vp,
                &self.video_codecs,
                102,
                self.direction,
            ));
        }
        sdp
    }

    /// Answers `offer` (RFC 3264 §6): one m= line per offered line, in order, keeping the
    /// offerer's payload types; streams we cannot take get port 0.
    pub fn answer(&self, offer: &Sdp) -> Result<Sdp, SdpError> {
        let mut sdp = self.base();
        let mut accepted = 0;
        for (i, m) in offer.media.iter().enumerate() {
            let (local, port) = match m.kind.as_str() {
                "audio" => (&self.audio_codecs, Some(self.audio_port)),
                "video" => (&self.video_codecs, self.video_port),
                _ => (&self.video_codecs, None),
            };
            let mut chosen: Vec<(u8, Codec)> = Vec::new();
            if let (Some(_), true) = (port, m.port != 0 && m.proto.starts_with("RTP/")) {
                for want in local {
                    for (pt, c) in m.codecs() {
                        if want.matches(&c) && !chosen.iter().any(|(p, _)| *p == pt) {
                            // Only one real codec plus telephone-event: the relay does not
                            // transcode, so offering several would invite mid-call switches.
                            let is_dtmf = c.name.eq_ignore_ascii_case("telephone-event");
                            let have_real = chosen
                                .iter()
                                .any(|(_, c)| !c.name.eq_ignore_ascii_case("telephone-event"));
                            if is_dtmf || !have_real {
                                chosen.push((pt, c));
                            }
                        }
                    }
                }
            }
            let has_real = chosen
                .iter()
                .any(|(_, c)| !c.name.eq_ignore_ascii_case("telephone-event"));
            let mut out = Media {
                kind: m.kind.clone(),
                port: 0,
                port_count: None,
                proto: m.proto.clone(),
                formats: m.formats.iter().take(1).cloned().collect(),
                connection: None,
                lines: Vec::new(),
                attributes: Vec::new(),
            };
            if has_real {
                accepted += 1;
                out.port = port.unwrap_or(0);
                out.formats = chosen.iter().map(|(pt, _)| pt.to_string()).collect();
                for (pt, c) in &chosen {
                    push_rtpmap(&mut out, *pt, c);
                }
                let d = offer.direction(i).reversed().intersect(self.direction);
                out.set_direction(d);
                if let Some(p) = m.attr("ptime") {
                    out.attributes.push(Attribute {
                        name: "ptime".into(),
                        value: Some(p.into()),
                    });
                }
            }
            sdp.media.push(out);
        }
        if accepted == 0 {
            return Err(SdpError::NoCommonCodec);
        }
        Ok(sdp)
    }
}

fn build_media(kind: &str, port: u16, codecs: &[Codec], mut dyn_pt: u8, d: Direction) -> Media {
    let mut m = Media {
        kind: kind.into(),
        port,
        port_count: None,
        proto: "RTP/AVP".into(),
        formats: Vec::new(),
        connection: None,
        lines: Vec::new(),
        attributes: Vec::new(),
    };
    for c in codecs {
        let pt = c.static_pt().unwrap_or_else(|| {
            let p = dyn_pt;
            dyn_pt = dyn_pt.saturating_add(1);
            p
        });
        m.formats.push(pt.to_string());
        push_rtpmap(&mut m, pt, c);
    }
    m.set_direction(d);
    m
}

fn push_rtpmap(m: &mut Media, pt: u8, c: &Codec) {
    let mut map = format!("{pt} {}/{}", c.name, c.clock);
    if let Some(ch) = c.channels {
        map.push_str(&format!("/{ch}"));
    }
    m.attributes.push(Attribute {
        name: "rtpmap".into(),
        value: Some(map),
    });
    if let Some(f) = &c.fmtp {
        m.attributes.push(Attribute {
            name: "fmtp".into(),
            value: Some(format!("{pt} {f}")),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\ns=-\r\n\
c=IN IP4 192.0.2.10\r\nt=0 0\r\n\
m=audio 49170 RTP/AVP 0 8 111 101\r\na=rtpmap:111 opus/48000/2\r\n\
a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=rtcp:49171\r\n\
m=video 51372 RTP/AVP 97 98\r\na=rtpmap:97 H264/90000\r\na=fmtp:97 profile-level-id=42e01f;packetization-mode=1\r\n\
a=rtpmap:98 VP8/90000\r\n";

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_round_trips() {
        let sdp = Sdp::parse(OFFER.as_bytes()).unwrap();
        assert_eq!(sdp.media.len(), 2);
        assert_eq!(sdp.media[0].port, 49170);
        let codecs = sdp.media[0].codecs();
        assert_eq!(codecs[0], (0, Codec::pcmu()));
        assert_eq!(codecs[2].1.name, "opus");
        assert_eq!(sdp.to_string(), OFFER);
    }

    #[test]
    fn answer_picks_our_preferred_codec_and_keeps_offer_pts() {
        let offer = Sdp::parse(OFFER.as_bytes()).unwrap();
        let mut local = LocalMedia::new(ip("198.51.100.1"), 40000);
        local.video_port = Some(40002);
        let ans = local.answer(&offer).unwrap();
        assert_eq!(ans.media[0].formats, vec!["111", "101"]);
        assert_eq!(ans.media[0].port, 40000);
        assert_eq!(ans.media[1].formats, vec!["97"]);
        assert_eq!(ans.direction(0), Direction::SendRecv);
        // The answer is itself valid SDP.
        assert_eq!(Sdp::parse(ans.to_string().as_bytes()).unwrap(), ans);
    }

    #[test]
    fn answer_rejects_unsupported_streams_with_port_zero() {
        let offer = Sdp::parse(OFFER.as_bytes()).unwrap();
        let mut local = LocalMedia::new(ip("198.51.100.1"), 40000);
        local.audio_codecs = vec![Codec::pcma()];
        let ans = local.answer(&offer).unwrap();
        assert_eq!(ans.media[0].formats, vec!["8"]);
        assert_eq!(ans.media[1].port, 0, "no video port configured");
        local.audio_codecs = vec![Codec::new("G729", 8000, None, None)];
        assert_eq!(local.answer(&offer), Err(SdpError::NoCommonCodec));
    }

    #[test]
    fn h264_packetization_modes_must_match() {
        let mode0 = Codec::new("H264", 90000, None, Some("profile-level-id=42e01f"));
        assert!(!Codec::h264().matches(&mode0));
        assert!(Codec::h264().matches(&Codec::h264()));
    }

    #[test]
    fn hold_and_resume() {
        let mut sdp = LocalMedia::new(ip("192.0.2.1"), 4000).offer();
        assert!(!sdp.is_hold());
        sdp.set_hold(true);
        assert!(sdp.is_hold());
        assert_eq!(sdp.direction(0), Direction::SendOnly);
        let offer = sdp.clone();
        let ans = LocalMedia::new(ip("192.0.2.2"), 5000)
            .answer(&offer)
            .unwrap();
        assert_eq!(ans.direction(0), Direction::RecvOnly);
        sdp.set_hold(false);
        assert!(!sdp.is_hold());
        let inactive = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
        assert!(Sdp::parse(inactive.as_bytes()).unwrap().is_hold());
    }

    #[test]
    fn rewrite_for_relay() {
        let mut sdp = Sdp::parse(OFFER.as_bytes()).unwrap();
        sdp.media[0].connection = Some(Connection::from_ip(ip("10.0.0.5")));
        sdp.rewrite_for_relay(ip("203.0.113.7"), &[30000, 30002]);
        assert_eq!(sdp.connection.as_ref().unwrap().address, "203.0.113.7");
        assert!(sdp.media[0].connection.is_none());
        assert_eq!((sdp.media[0].port, sdp.media[1].port), (30000, 30002));
        assert!(sdp.media[0].attr("rtcp").is_none());
        let v6 = ip("2001:db8::7");
        sdp.rewrite_for_relay(v6, &[1, 2]);
        assert!(sdp.to_string().contains("c=IN IP6 2001:db8::7\r\n"));
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "x",
            "v=1\r\n",
            "v=0\r\nQ=1\r\n",
            "v=0\r\no=a\r\n",
            "v=0\r\nm=audio x RTP/AVP 0\r\n",
        ] {
            assert!(Sdp::parse(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }
}
