//! RFC 3863 `application/pidf+xml` presence documents (RFC 3856 presence package): one tuple
//! whose basic status is open or closed, with an optional note.

use super::xml::XmlWriter;

/// Content-Type of a PIDF body.
pub const PIDF_TYPE: &str = "application/pidf+xml";

/// RFC 3863 §4.1.4 basic status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basic {
    Open,
    Closed,
}

impl Basic {
    pub fn as_str(self) -> &'static str {
        match self {
            Basic::Open => "open",
            Basic::Closed => "closed",
        }
    }
}

/// The presence of one extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presence {
    /// The presentity, e.g. `sip:202@pbx.local`.
    pub entity: String,
    /// Tuple id: an XML ID, so it must start with a letter; the caller keeps it stable.
    pub tuple_id: String,
    pub basic: Basic,
    /// Where the presentity can be reached (a contact URI), if it is to be shown.
    pub contact: Option<String>,
    /// Free text such as "On the phone".
    pub note: Option<String>,
}

impl Presence {
    pub fn to_xml(&self) -> String {
        let mut w = XmlWriter::new();
        w.open(
            "presence",
            &[
                ("xmlns", "urn:ietf:params:xml:ns:pidf"),
                ("entity", &self.entity),
            ],
        );
        w.open("tuple", &[("id", &self.tuple_id)]);
        w.open("status", &[]);
        w.text("basic", &[], self.basic.as_str());
        w.close("status");
        if let Some(c) = &self.contact {
            w.text("contact", &[], c);
        }
        if let Some(n) = &self.note {
            w.text("note", &[], n);
        }
        w.close("tuple");
        w.close("presence");
        w.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_with_note_golden_bytes() {
        let p = Presence {
            entity: "sip:202@pbx.local".into(),
            tuple_id: "t202".into(),
            basic: Basic::Open,
            contact: Some("sip:202@192.0.2.2".into()),
            note: Some("On the phone <with> \"Ann\" & 'co'".into()),
        };
        let expected = r#"<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:202@pbx.local">
  <tuple id="t202">
    <status>
      <basic>open</basic>
    </status>
    <contact>sip:202@192.0.2.2</contact>
    <note>On the phone &lt;with&gt; &quot;Ann&quot; &amp; &apos;co&apos;</note>
  </tuple>
</presence>
"#;
        assert_eq!(p.to_xml(), expected);
        let xml = p.to_xml();
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let note = doc.descendants().find(|n| n.has_tag_name("note")).unwrap();
        assert_eq!(note.text(), Some("On the phone <with> \"Ann\" & 'co'"));
    }

    #[test]
    fn closed_without_note() {
        let p = Presence {
            entity: "sip:202@pbx.local".into(),
            tuple_id: "t202".into(),
            basic: Basic::Closed,
            contact: None,
            note: None,
        };
        let xml = p.to_xml();
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let basic = doc.descendants().find(|n| n.has_tag_name("basic")).unwrap();
        assert_eq!(basic.text(), Some("closed"));
        assert!(!xml.contains("<note>"));
    }
}
