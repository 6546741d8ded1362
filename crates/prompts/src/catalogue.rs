//! The text catalogue: every prompt id with its Bahasa Indonesia and English text.
//!
//! The file is TOML, one table per prompt, both languages required:
//!
//! ```toml
//! [vm-unavailable]
//! id = "Pemilik ekstensi {number} sedang tidak dapat menerima panggilan."
//! en = "The person at extension {number} is not available."
//! ```
//!
//! A text may hold one `{number}` slot. Such a prompt is rendered as two clips, `<id>.1`
//! (the words before the slot) and `<id>.2` (after), and [`Catalogue::with_number`] splices
//! the spoken number between them, so the number is read by the same building blocks as
//! everywhere else instead of by the synthesiser's own (and, for `id`, unreliable) rules.

use std::collections::BTreeMap;
use std::fmt;

use crate::{Language, PromptError};

/// The one slot a prompt text may contain.
pub const NUMBER_SLOT: &str = "{number}";

/// The catalogue shipped in the repo (`crates/prompts/catalogue.toml`).
const BUILTIN: &str = include_str!("../catalogue.toml");

/// Prompts the PBX services play by name; the builtin catalogue must hold every one of them
/// (and every building block of [`crate::say`]).
pub const SERVICE_PROMPTS: &[&str] = &[
    "conf-enter-pin",
    "conf-wrong-pin",
    "conf-only-member",
    "conf-joined",
    "conf-left",
    "conf-locked",
    "conf-full",
    "conf-muted",
    "conf-unmuted",
    "conf-kicked",
    "conf-room-locked-now",
    "conf-room-unlocked",
    "conf-all-muted",
    "conf-members",
    "vm-enter-pin",
    "vm-enter-mailbox",
    "vm-wrong-pin",
    "vm-unavailable",
    "vm-busy",
    "vm-is-unavailable",
    "vm-is-busy",
    "vm-leave-after-beep",
    "vm-you-have",
    "vm-no-messages",
    "vm-new-messages",
    "vm-old-messages",
    "vm-message-from",
    "vm-unknown-caller",
    "vm-received-at",
    "vm-menu",
    "vm-message-menu",
    "vm-main-menu",
    "vm-options",
    "vm-deleted",
    "vm-saved",
    "vm-no-more-messages",
    "vm-record-greeting",
    "vm-record-busy",
    "vm-record-name",
    "vm-greeting-saved",
    "vm-enter-new-pin",
    "vm-reenter-new-pin",
    "vm-pin-not-changed",
    "vm-pin-changed",
    "vm-mailbox-full",
    "vm-goodbye",
    "ivr-invalid",
    "ivr-timeout",
    "ivr-transferring",
    "feature-activated",
    "feature-deactivated",
    "feature-forward-enter-number",
    "feature-not-allowed",
    "park-slot",
    "park-empty",
    "echo-test",
    "recording-started",
    "recording-stopped",
    "number-invalid",
    "call-failed",
    "goodbye",
];

/// A prompt id: lowercase ASCII letters, digits and `-` (it becomes a file name), plus for
/// the two halves of a slotted prompt a `.1`/`.2` suffix.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PromptId(String);

impl PromptId {
    /// Checks `s` is a valid catalogue id (no suffix).
    pub fn new(s: &str) -> Result<PromptId, PromptError> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-');
        if ok {
            Ok(PromptId(s.to_string()))
        } else {
            Err(PromptError::BadId { id: s.to_string() })
        }
    }

    /// The id as written, which is also the file stem of its WAV files.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// One half of a slotted prompt: `part` is 1 (before the slot) or 2 (after it).
    fn part(&self, part: u8) -> PromptId {
        PromptId(format!("{}.{part}", self.0))
    }

    /// Ids the `say` module builds from its fixed naming scheme; never user input.
    pub(crate) fn block(s: String) -> PromptId {
        PromptId(s)
    }
}

impl fmt::Display for PromptId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One prompt's text in both languages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prompt {
    id: String,
    en: String,
}

impl Prompt {
    /// The text in `language`.
    pub fn text(&self, language: Language) -> &str {
        match language {
            Language::Id => &self.id,
            Language::En => &self.en,
        }
    }

    /// Whether the text has the `{number}` slot (then it has it in both languages).
    pub fn has_number_slot(&self) -> bool {
        self.id.contains(NUMBER_SLOT)
    }
}

/// A prompt as the TOML holds it; both languages optional here so a missing one is reported
/// by id rather than as a bare serde error.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrompt {
    id: Option<String>,
    en: Option<String>,
}

/// Every prompt of the set, by id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Catalogue {
    prompts: BTreeMap<PromptId, Prompt>,
}

impl Catalogue {
    /// The catalogue shipped in the repo, checked for completeness.
    pub fn builtin() -> Result<Catalogue, PromptError> {
        let cat = Catalogue::parse(BUILTIN)?;
        cat.check_complete()?;
        Ok(cat)
    }

    /// Parses a catalogue strictly: unknown keys, bad ids, a missing or empty language, or a
    /// misused `{number}` slot are errors naming the prompt id.
    pub fn parse(text: &str) -> Result<Catalogue, PromptError> {
        let raw: BTreeMap<String, RawPrompt> =
            toml::from_str(text).map_err(|e| PromptError::CatalogueSyntax {
                message: e.to_string(),
            })?;
        let mut cat = Catalogue::default();
        for (key, raw) in raw {
            let id = PromptId::new(&key)?;
            let text = |lang: Language, t: Option<String>| match t {
                Some(t) if !t.trim().is_empty() => Ok(t.trim().to_string()),
                _ => Err(PromptError::MissingLanguage {
                    id: key.clone(),
                    language: lang,
                }),
            };
            let prompt = Prompt {
                id: text(Language::Id, raw.id)?,
                en: text(Language::En, raw.en)?,
            };
            cat.insert(id, prompt)?;
        }
        Ok(cat)
    }

    /// Adds or replaces a prompt after checking its slot use; the daemon adds generated
    /// texts this way (an IVR's `greeting`) before a build.
    pub fn insert(&mut self, id: PromptId, prompt: Prompt) -> Result<(), PromptError> {
        check_slots(&id, &prompt)?;
        self.prompts.insert(id, prompt);
        Ok(())
    }

    /// Makes a prompt from its two texts (for [`Catalogue::insert`]).
    pub fn prompt(id_text: &str, en_text: &str) -> Prompt {
        Prompt {
            id: id_text.trim().to_string(),
            en: en_text.trim().to_string(),
        }
    }

    /// The prompt named `id`, if any.
    pub fn get(&self, id: &str) -> Option<&Prompt> {
        self.prompts.get(&PromptId(id.to_string()))
    }

    /// All prompts in id order.
    pub fn iter(&self) -> impl Iterator<Item = (&PromptId, &Prompt)> {
        self.prompts.iter()
    }

    /// Number of prompts.
    pub fn len(&self) -> usize {
        self.prompts.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.prompts.is_empty()
    }

    /// The clips a build renders for `language`, in id order: one per prompt, two (`.1`,
    /// `.2`) for a slotted one.
    pub fn clips(&self, language: Language) -> Vec<(PromptId, String)> {
        let mut out = Vec::with_capacity(self.prompts.len() + 4);
        for (id, prompt) in &self.prompts {
            let text = prompt.text(language);
            match text.split_once(NUMBER_SLOT) {
                Some((before, after)) => {
                    out.push((id.part(1), before.trim().to_string()));
                    out.push((id.part(2), after.trim().to_string()));
                }
                None => out.push((id.clone(), text.to_string())),
            }
        }
        out
    }

    /// The clip sequence of prompt `id`: for a slotted prompt, its first half, `number`
    /// (e.g. from [`crate::say::digits`]), then its second half; otherwise the prompt alone
    /// (and `number` must be empty).
    pub fn with_number(&self, id: &str, number: &[PromptId]) -> Result<Vec<PromptId>, PromptError> {
        let key = PromptId(id.to_string());
        let prompt = self
            .prompts
            .get(&key)
            .ok_or_else(|| PromptError::UnknownPrompt { id: id.to_string() })?;
        match (prompt.has_number_slot(), number.is_empty()) {
            (true, _) => {
                let mut seq = vec![key.part(1)];
                seq.extend_from_slice(number);
                seq.push(key.part(2));
                Ok(seq)
            }
            (false, true) => Ok(vec![key]),
            (false, false) => Err(PromptError::NoNumberSlot { id: id.to_string() }),
        }
    }

    /// Checks that every service prompt and every `say` building block is present.
    pub fn check_complete(&self) -> Result<(), PromptError> {
        let missing: Vec<String> = SERVICE_PROMPTS
            .iter()
            .map(|s| PromptId(s.to_string()))
            .chain(crate::say::building_blocks())
            .filter(|id| !self.prompts.contains_key(id))
            .map(|id| id.0)
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(PromptError::Incomplete { missing })
        }
    }
}

/// A slot must appear in both languages or neither, at most once, with words on both sides
/// (so both halves exist as clips in every language).
fn check_slots(id: &PromptId, prompt: &Prompt) -> Result<(), PromptError> {
    let bad = |why: &str| PromptError::BadSlot {
        id: id.0.clone(),
        why: why.to_string(),
    };
    let counts = [
        prompt.id.matches(NUMBER_SLOT).count(),
        prompt.en.matches(NUMBER_SLOT).count(),
    ];
    if counts[0] != counts[1] {
        return Err(bad(
            "`{number}` must appear in both languages or in neither",
        ));
    }
    if counts[0] > 1 {
        return Err(bad("only one `{number}` per prompt"));
    }
    for lang in Language::ALL {
        let text = prompt.text(lang);
        if let Some((before, after)) = text.split_once(NUMBER_SLOT) {
            if before.trim().is_empty() || after.trim().is_empty() {
                return Err(bad(
                    "put words on both sides of `{number}`, or split the prompt",
                ));
            }
        }
        if text.contains('{') || text.contains('}') {
            let rest = text.replace(NUMBER_SLOT, "");
            if rest.contains('{') || rest.contains('}') {
                return Err(bad("the only slot is `{number}`"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn builtin_is_complete_in_both_languages() {
        let cat = Catalogue::builtin().unwrap();
        for (id, prompt) in cat.iter() {
            for lang in Language::ALL {
                assert!(!prompt.text(lang).is_empty(), "{id} has no {lang} text");
            }
        }
        assert!(cat.len() > SERVICE_PROMPTS.len());
    }

    #[test]
    fn missing_language_names_the_id() {
        let err = Catalogue::parse("[conf-full]\nid = \"Ruang penuh.\"\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "prompt `conf-full` has no `en` text: add `en = \"...\"` under [conf-full] in the catalogue"
        );
        let err = Catalogue::parse("[conf-full]\nid = \"  \"\nen = \"Full.\"\n").unwrap_err();
        assert!(
            err.to_string().contains("`conf-full` has no `id` text"),
            "{err}"
        );
    }

    #[test]
    fn unknown_keys_and_bad_ids_are_errors() {
        let err = Catalogue::parse("[x]\nid = \"a\"\nen = \"b\"\nde = \"c\"\n").unwrap_err();
        assert!(err.to_string().contains("unknown field `de`"), "{err}");
        let err = Catalogue::parse("[Conf_Full]\nid = \"a\"\nen = \"b\"\n").unwrap_err();
        assert!(err.to_string().contains("`Conf_Full`"), "{err}");
        let err = Catalogue::parse("oops = 1\n").unwrap_err();
        assert!(matches!(err, PromptError::CatalogueSyntax { .. }), "{err}");
    }

    #[test]
    fn slots_are_checked_and_split() {
        let err =
            Catalogue::parse("[a]\nid = \"Nomor {number}.\"\nen = \"Number.\"\n").unwrap_err();
        assert!(err.to_string().contains("both languages"), "{err}");
        let err =
            Catalogue::parse("[a]\nid = \"{number} x\"\nen = \"y {number} x\"\n").unwrap_err();
        assert!(err.to_string().contains("both sides"), "{err}");
        let err = Catalogue::parse("[a]\nid = \"a {name} b\"\nen = \"a b\"\n").unwrap_err();
        assert!(err.to_string().contains("only slot"), "{err}");

        let cat = Catalogue::parse(
            "[vm-unavailable]\nid = \"Ekstensi {number} sibuk.\"\nen = \"Extension {number} is busy.\"\n[b]\nid = \"x\"\nen = \"y\"\n",
        )
        .unwrap();
        let clips = cat.clips(Language::En);
        let ids: Vec<&str> = clips.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, ["b", "vm-unavailable.1", "vm-unavailable.2"]);
        assert_eq!(clips[1].1, "Extension");
        assert_eq!(clips[2].1, "is busy.");
        let two = PromptId::new("n-2").unwrap();
        let seq = cat
            .with_number("vm-unavailable", std::slice::from_ref(&two))
            .unwrap();
        let seq: Vec<&str> = seq.iter().map(PromptId::as_str).collect();
        assert_eq!(seq, ["vm-unavailable.1", "n-2", "vm-unavailable.2"]);
        assert!(matches!(
            cat.with_number("b", &[two]),
            Err(PromptError::NoNumberSlot { .. })
        ));
        assert!(matches!(
            cat.with_number("nope", &[]),
            Err(PromptError::UnknownPrompt { .. })
        ));
    }

    #[test]
    fn incomplete_catalogue_lists_what_is_missing() {
        let cat =
            Catalogue::parse("[goodbye]\nid = \"Sampai jumpa.\"\nen = \"Goodbye.\"\n").unwrap();
        match cat.check_complete() {
            Err(PromptError::Incomplete { missing }) => {
                assert!(missing.contains(&"conf-enter-pin".to_string()));
                assert!(missing.contains(&"n-1000".to_string()));
                assert!(!missing.contains(&"goodbye".to_string()));
            }
            other => panic!("expected Incomplete, got {other:?}"),
        }
    }
}
