//! RFC 4235 `application/dialog-info+xml` bodies: the dialog event package that drives BLF
//! keys. Documents are full state; an empty dialog list means the extension is idle.

use super::xml::XmlWriter;

/// Content-Type of a dialog-info body.
pub const DIALOG_INFO_TYPE: &str = "application/dialog-info+xml";

/// Who created the dialog, seen from the observed extension (RFC 4235 §4.1.2 `direction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The extension placed the call.
    Initiator,
    /// The extension is being called.
    Recipient,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Initiator => "initiator",
            Direction::Recipient => "recipient",
        }
    }
}

/// The dialog state machine of RFC 4235 §3.7.1. Phones light BLF keys from it: `early` on
/// a recipient blinks (pick-up possible), `confirmed` is steady.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogState {
    Trying,
    Proceeding,
    Early,
    Confirmed,
    Terminated,
}

impl DialogState {
    pub fn as_str(self) -> &'static str {
        match self {
            DialogState::Trying => "trying",
            DialogState::Proceeding => "proceeding",
            DialogState::Early => "early",
            DialogState::Confirmed => "confirmed",
            DialogState::Terminated => "terminated",
        }
    }
}

/// One side of a dialog: an identity (address of record) and optionally the target URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    pub identity: String,
    pub display: Option<String>,
    pub target: Option<String>,
}

/// One dialog of the observed extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialogEntry {
    /// Unique within the document and stable across notifications for the same dialog.
    pub id: String,
    pub call_id: Option<String>,
    pub local_tag: Option<String>,
    pub remote_tag: Option<String>,
    pub direction: Option<Direction>,
    pub state: DialogState,
    /// The SIP status that ended the dialog, if it ended with a response.
    pub code: Option<u16>,
    pub local: Option<Participant>,
    pub remote: Option<Participant>,
}

/// The dialogs of one extension, as one subscriber is told them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialogInfo {
    /// The observed address, e.g. `sip:202@pbx.local`.
    pub entity: String,
    /// From [`crate::event::Subscription::next_version`] (starts at 0, RFC 4235 §4.1.1).
    pub version: u32,
    pub dialogs: Vec<DialogEntry>,
}

impl DialogInfo {
    pub fn to_xml(&self) -> String {
        let mut w = XmlWriter::new();
        let version = self.version.to_string();
        let root = [
            ("xmlns", "urn:ietf:params:xml:ns:dialog-info"),
            ("version", version.as_str()),
            ("state", "full"),
            ("entity", self.entity.as_str()),
        ];
        if self.dialogs.is_empty() {
            w.empty("dialog-info", &root);
            return w.finish();
        }
        w.open("dialog-info", &root);
        for d in &self.dialogs {
            let mut attrs: Vec<(&str, &str)> = vec![("id", &d.id)];
            if let Some(c) = &d.call_id {
                attrs.push(("call-id", c));
            }
            if let Some(t) = &d.local_tag {
                attrs.push(("local-tag", t));
            }
            if let Some(t) = &d.remote_tag {
                attrs.push(("remote-tag", t));
            }
            if let Some(dir) = d.direction {
                attrs.push(("direction", dir.as_str()));
            }
            w.open("dialog", &attrs);
            let code = d.code.map(|c| c.to_string());
            match &code {
                Some(c) => w.text("state", &[("code", c)], d.state.as_str()),
                None => w.text("state", &[], d.state.as_str()),
            }
            for (name, p) in [("local", &d.local), ("remote", &d.remote)] {
                let Some(p) = p else { continue };
                w.open(name, &[]);
                match &p.display {
                    Some(disp) => w.text("identity", &[("display", disp)], &p.identity),
                    None => w.text("identity", &[], &p.identity),
                }
                if let Some(t) = &p.target {
                    w.empty("target", &[("uri", t)]);
                }
                w.close(name);
            }
            w.close("dialog");
        }
        w.close("dialog-info");
        w.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ringing() -> DialogInfo {
        DialogInfo {
            entity: "sip:202@pbx.local".into(),
            version: 3,
            dialogs: vec![DialogEntry {
                id: "d1".into(),
                call_id: Some("a84b4c76e66710@192.0.2.4".into()),
                local_tag: Some("pbx-7".into()),
                remote_tag: Some("1928301774".into()),
                direction: Some(Direction::Recipient),
                state: DialogState::Early,
                code: None,
                local: Some(Participant {
                    identity: "sip:202@pbx.local".into(),
                    display: Some("Budi".into()),
                    target: Some("sip:202@192.0.2.2:5060".into()),
                }),
                remote: Some(Participant {
                    identity: "sip:201@pbx.local".into(),
                    display: Some("\"Ann\" <script> & co".into()),
                    target: None,
                }),
            }],
        }
    }

    #[test]
    fn early_dialog_golden_bytes() {
        let expected = r#"<?xml version="1.0" encoding="UTF-8"?>
<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="3" state="full" entity="sip:202@pbx.local">
  <dialog id="d1" call-id="a84b4c76e66710@192.0.2.4" local-tag="pbx-7" remote-tag="1928301774" direction="recipient">
    <state>early</state>
    <local>
      <identity display="Budi">sip:202@pbx.local</identity>
      <target uri="sip:202@192.0.2.2:5060"/>
    </local>
    <remote>
      <identity display="&quot;Ann&quot; &lt;script&gt; &amp; co">sip:201@pbx.local</identity>
    </remote>
  </dialog>
</dialog-info>
"#;
        assert_eq!(ringing().to_xml(), expected);
    }

    #[test]
    fn idle_is_an_empty_dialog_list() {
        let idle = DialogInfo {
            entity: "sip:202@pbx.local".into(),
            version: 0,
            dialogs: vec![],
        };
        assert_eq!(
            idle.to_xml(),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<dialog-info \
             xmlns=\"urn:ietf:params:xml:ns:dialog-info\" version=\"0\" state=\"full\" \
             entity=\"sip:202@pbx.local\"/>\n"
        );
        let xml = idle.to_xml();
        let doc = roxmltree::Document::parse(&xml).unwrap();
        assert_eq!(
            doc.root_element()
                .children()
                .filter(|c| c.is_element())
                .count(),
            0
        );
    }

    #[test]
    fn terminated_carries_its_code_and_parses_back() {
        let mut info = ringing();
        info.dialogs[0].state = DialogState::Terminated;
        info.dialogs[0].code = Some(486);
        let xml = info.to_xml();
        assert!(xml.contains("<state code=\"486\">terminated</state>"));
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let remote = doc
            .descendants()
            .find(|n| n.has_tag_name("remote"))
            .and_then(|r| r.children().find(|c| c.has_tag_name("identity")))
            .unwrap();
        assert_eq!(remote.attribute("display"), Some("\"Ann\" <script> & co"));
        assert_eq!(remote.text(), Some("sip:201@pbx.local"));
    }
}
