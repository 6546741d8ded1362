//! RFC 4575 `application/conference-info+xml` bodies for the conference event package.
//!
//! Every document is full state (`state="full"`): the focus sends the whole roster each time.
//! Partial notifications (RFC 4575 §4.6) would save bytes on large rooms, but they make a
//! lost or reordered NOTIFY a corrupted roster until the next full one; with rooms of at
//! most a few dozen members full state is small and always correct.

use super::xml::XmlWriter;

/// Content-Type of a conference-info body.
pub const CONFERENCE_INFO_TYPE: &str = "application/conference-info+xml";

/// An endpoint's status (RFC 4575 §5.7.1 `endpoint-status-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointStatus {
    Pending,
    DialingOut,
    DialingIn,
    Alerting,
    OnHold,
    Connected,
    MutedViaFocus,
    Disconnecting,
    Disconnected,
}

impl EndpointStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointStatus::Pending => "pending",
            EndpointStatus::DialingOut => "dialing-out",
            EndpointStatus::DialingIn => "dialing-in",
            EndpointStatus::Alerting => "alerting",
            EndpointStatus::OnHold => "on-hold",
            EndpointStatus::Connected => "connected",
            EndpointStatus::MutedViaFocus => "muted-via-focus",
            EndpointStatus::Disconnecting => "disconnecting",
            EndpointStatus::Disconnected => "disconnected",
        }
    }
}

/// The kind of a media stream (the `<type>` element: an SDP media name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    Audio,
    Video,
}

impl MediaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
        }
    }
}

/// A stream's direction as the focus sees it (the `<status>` of a media element).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaStatus {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl MediaStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MediaStatus::SendRecv => "sendrecv",
            MediaStatus::SendOnly => "sendonly",
            MediaStatus::RecvOnly => "recvonly",
            MediaStatus::Inactive => "inactive",
        }
    }
}

/// One media stream of an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConferenceMedia {
    /// Unique within the document (RFC 4575 §5.7.4 requires the `id` attribute).
    pub id: String,
    pub kind: MediaKind,
    pub status: MediaStatus,
    /// The RTP SSRC the focus sends this stream with, if known.
    pub src_id: Option<u32>,
}

/// One signalling leg of a user (a member's call into the room).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConferenceEndpoint {
    /// The leg's URI, e.g. the member's Contact.
    pub entity: String,
    pub display_text: Option<String>,
    pub status: EndpointStatus,
    pub media: Vec<ConferenceMedia>,
}

/// A member of the room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConferenceUser {
    /// The member's address of record, e.g. `sip:201@pbx.local`.
    pub entity: String,
    pub display_text: Option<String>,
    pub endpoints: Vec<ConferenceEndpoint>,
}

/// The whole state of one room, as one subscriber is told it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConferenceInfo {
    /// The conference URI (the room's address).
    pub entity: String,
    /// From [`crate::event::Subscription::next_version`]: per subscriber, never reused.
    pub version: u32,
    pub display_text: Option<String>,
    pub subject: Option<String>,
    pub maximum_user_count: Option<u32>,
    /// Whether the room is locked (`<locked>` of conference-state).
    pub locked: Option<bool>,
    pub users: Vec<ConferenceUser>,
}

impl ConferenceInfo {
    /// The document's bytes. `user-count` is the number of users listed.
    pub fn to_xml(&self) -> String {
        let mut w = XmlWriter::new();
        let version = self.version.to_string();
        w.open(
            "conference-info",
            &[
                ("xmlns", "urn:ietf:params:xml:ns:conference-info"),
                ("entity", &self.entity),
                ("state", "full"),
                ("version", &version),
            ],
        );
        w.open("conference-description", &[]);
        if let Some(t) = &self.display_text {
            w.text("display-text", &[], t);
        }
        if let Some(s) = &self.subject {
            w.text("subject", &[], s);
        }
        if let Some(m) = self.maximum_user_count {
            w.text("maximum-user-count", &[], &m.to_string());
        }
        w.close("conference-description");
        w.open("conference-state", &[]);
        w.text("user-count", &[], &self.users.len().to_string());
        w.text("active", &[], "true");
        if let Some(l) = self.locked {
            w.text("locked", &[], if l { "true" } else { "false" });
        }
        w.close("conference-state");
        w.open("users", &[]);
        for u in &self.users {
            w.open("user", &[("entity", &u.entity), ("state", "full")]);
            if let Some(t) = &u.display_text {
                w.text("display-text", &[], t);
            }
            for e in &u.endpoints {
                w.open("endpoint", &[("entity", &e.entity)]);
                if let Some(t) = &e.display_text {
                    w.text("display-text", &[], t);
                }
                w.text("status", &[], e.status.as_str());
                for m in &e.media {
                    w.open("media", &[("id", &m.id)]);
                    w.text("type", &[], m.kind.as_str());
                    if let Some(ssrc) = m.src_id {
                        w.text("src-id", &[], &ssrc.to_string());
                    }
                    w.text("status", &[], m.status.as_str());
                    w.close("media");
                }
                w.close("endpoint");
            }
            w.close("user");
        }
        w.close("users");
        w.close("conference-info");
        w.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room() -> ConferenceInfo {
        ConferenceInfo {
            entity: "sip:800@pbx.local".into(),
            version: 1,
            display_text: Some("Ruang Rapat".into()),
            subject: Some("Weekly & <sync>".into()),
            maximum_user_count: Some(50),
            locked: Some(false),
            users: vec![
                ConferenceUser {
                    entity: "sip:201@pbx.local".into(),
                    display_text: Some("<script>alert(\"x\")</script>".into()),
                    endpoints: vec![ConferenceEndpoint {
                        entity: "sip:201@192.0.2.1:5060".into(),
                        display_text: None,
                        status: EndpointStatus::Connected,
                        media: vec![
                            ConferenceMedia {
                                id: "1".into(),
                                kind: MediaKind::Audio,
                                status: MediaStatus::SendRecv,
                                src_id: Some(305419896),
                            },
                            ConferenceMedia {
                                id: "2".into(),
                                kind: MediaKind::Video,
                                status: MediaStatus::RecvOnly,
                                src_id: None,
                            },
                        ],
                    }],
                },
                ConferenceUser {
                    entity: "sip:202@pbx.local".into(),
                    display_text: Some("Budi's phone".into()),
                    endpoints: vec![ConferenceEndpoint {
                        entity: "sip:202@192.0.2.2".into(),
                        display_text: None,
                        status: EndpointStatus::OnHold,
                        media: vec![ConferenceMedia {
                            id: "3".into(),
                            kind: MediaKind::Audio,
                            status: MediaStatus::Inactive,
                            src_id: None,
                        }],
                    }],
                },
            ],
        }
    }

    #[test]
    fn full_state_golden_bytes() {
        let expected = r#"<?xml version="1.0" encoding="UTF-8"?>
<conference-info xmlns="urn:ietf:params:xml:ns:conference-info" entity="sip:800@pbx.local" state="full" version="1">
  <conference-description>
    <display-text>Ruang Rapat</display-text>
    <subject>Weekly &amp; &lt;sync&gt;</subject>
    <maximum-user-count>50</maximum-user-count>
  </conference-description>
  <conference-state>
    <user-count>2</user-count>
    <active>true</active>
    <locked>false</locked>
  </conference-state>
  <users>
    <user entity="sip:201@pbx.local" state="full">
      <display-text>&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;</display-text>
      <endpoint entity="sip:201@192.0.2.1:5060">
        <status>connected</status>
        <media id="1">
          <type>audio</type>
          <src-id>305419896</src-id>
          <status>sendrecv</status>
        </media>
        <media id="2">
          <type>video</type>
          <status>recvonly</status>
        </media>
      </endpoint>
    </user>
    <user entity="sip:202@pbx.local" state="full">
      <display-text>Budi&apos;s phone</display-text>
      <endpoint entity="sip:202@192.0.2.2">
        <status>on-hold</status>
        <media id="3">
          <type>audio</type>
          <status>inactive</status>
        </media>
      </endpoint>
    </user>
  </users>
</conference-info>
"#;
        assert_eq!(room().to_xml(), expected);
    }

    #[test]
    fn parses_back_with_the_hostile_strings_intact() {
        let xml = room().to_xml();
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "conference-info");
        assert_eq!(
            root.tag_name().namespace(),
            Some("urn:ietf:params:xml:ns:conference-info")
        );
        let names: Vec<&str> = root
            .descendants()
            .filter(|n| n.has_tag_name("user"))
            .filter_map(|u| u.children().find(|c| c.has_tag_name("display-text")))
            .filter_map(|d| d.text())
            .collect();
        assert_eq!(names, ["<script>alert(\"x\")</script>", "Budi's phone"]);
        let statuses: Vec<&str> = root
            .descendants()
            .filter(|n| n.has_tag_name("endpoint"))
            .filter_map(|e| e.children().find(|c| c.has_tag_name("status")))
            .filter_map(|s| s.text())
            .collect();
        assert_eq!(statuses, ["connected", "on-hold"]);
    }

    #[test]
    fn an_empty_room_counts_zero_users() {
        let mut info = room();
        info.users.clear();
        info.entity = "sip:800@pbx.local\"><x".into();
        let xml = info.to_xml();
        assert!(xml.contains("<user-count>0</user-count>"));
        assert!(xml.contains("<users>\n  </users>"));
        let doc = roxmltree::Document::parse(&xml).unwrap();
        assert_eq!(
            doc.root_element().attribute("entity"),
            Some("sip:800@pbx.local\"><x")
        );
    }
}
