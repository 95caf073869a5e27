//! The set of vendor profiles a daemon knows: the built-in ones, overridden
//! and extended by the user's profile files, so a provider can be added (or
//! a vendor's change followed) without a release.
//!
//! User files are added in order. A file with a new `name` adds a profile; a
//! file with a known `name` replaces that profile, unless it says
//! `base = "<name>"`. With `base`, the file starts from the named profile (a
//! built-in or one from an earlier file) and is applied on top of it:
//!
//! - tables are merged key by key, recursively;
//! - the arrays of tables `command_status` and `receipt_error` are merged by
//!   `code` (an entry replaces the base's entry with the same code, new codes
//!   are added) and `receipt_stat` by `stat`, case-insensitively;
//! - every other array (`notes`, `versions`, `coding.accepted`, …) is
//!   replaced whole.
//!
//! So a small file is enough:
//!
//! ```toml
//! name = "ovh-eu"
//! base = "ovh"
//!
//! [limits]
//! window = 5
//!
//! [[command_status]]
//! code = 0x401
//! reason = "invalid_message"
//! class = "temporary"
//! meaning = "Data Coding unsupported (retried elsewhere)"
//! ```
//!
//! A base must be built in or come from an earlier file, so a chain of bases
//! cannot loop: a base naming a later file (or the file itself, when no
//! profile has that name yet) is reported as unknown.
//!
//! Errors name the user's file. Positions are in that file: a key or value
//! the file gives is reported where it is written; a problem with something
//! inherited from the base (a field the merged result is missing, say) is
//! reported at line 1, column 1 of the file.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use serde::Deserialize;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::profile::{position, Profile, ProfileError, BUILTIN};

/// The profiles a daemon can use, by name.
#[derive(Clone, Default)]
pub struct ProfileSet {
    entries: BTreeMap<String, Entry>,
}

/// One profile and the files it was made from.
#[derive(Clone)]
struct Entry {
    profile: Profile,
    /// The profile's TOML files, base first; the last one is its own.
    layers: Vec<Layer>,
}

#[derive(Clone)]
struct Layer {
    origin: String,
    text: Arc<str>,
}

impl fmt::Debug for ProfileSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (name, entry) in &self.entries {
            let origins: Vec<&str> = entry.layers.iter().map(|l| l.origin.as_str()).collect();
            map.entry(name, &origins);
        }
        map.finish()
    }
}

impl ProfileSet {
    /// Every built-in profile.
    pub fn builtin() -> Result<ProfileSet, ProfileError> {
        let mut entries = BTreeMap::new();
        for (name, text) in BUILTIN {
            let origin = format!("built-in profile {name}");
            let profile = Profile::from_toml(text, &origin)?;
            let layer = Layer {
                origin,
                text: Arc::from(*text),
            };
            entries.insert(
                profile.name.clone(),
                Entry {
                    profile,
                    layers: vec![layer],
                },
            );
        }
        Ok(ProfileSet { entries })
    }

    /// Adds a user profile file (`origin` names it in errors), see the
    /// module documentation for the rules.
    pub fn with_user(mut self, origin: &str, text: &str) -> Result<ProfileSet, ProfileError> {
        self.add_user(origin, text)?;
        Ok(self)
    }

    /// Adds a user profile file (`origin` names it in errors), see the
    /// module documentation for the rules. On error the set is unchanged.
    pub fn add_user(&mut self, origin: &str, text: &str) -> Result<&Profile, ProfileError> {
        let at = |offset: usize, message: String| {
            let (line, column) = position(text, offset);
            ProfileError {
                origin: origin.to_owned(),
                line,
                column,
                message,
            }
        };
        let tree = parse(text, origin)?;
        let mut layers = match tree.get_ref().get_key_value("base") {
            None => Vec::new(),
            Some((key, value)) => {
                let Some(base) = value.get_ref().as_str() else {
                    return Err(at(
                        value.span().start,
                        format!(
                            "base is a {}; expected the name of a profile",
                            value.get_ref().type_str()
                        ),
                    ));
                };
                let Some(entry) = self.entries.get(base) else {
                    let known: Vec<&str> = self.names().collect();
                    return Err(at(
                        key.span().start,
                        format!(
                            "base profile {base:?} is not known: a base must be built in or \
                             come from an earlier profile file (known: {})",
                            known.join(", ")
                        ),
                    ));
                };
                if !tree.get_ref().contains_key("name") {
                    return Err(at(
                        key.span().start,
                        format!(
                            "a profile with a base must give its own name \
                             (name = {base:?} to change {base:?} itself)"
                        ),
                    ));
                }
                entry.layers.clone()
            }
        };
        layers.push(Layer {
            origin: origin.to_owned(),
            text: Arc::from(text),
        });
        let profile = resolve(&layers)?;
        let name = profile.name.clone();
        self.entries.insert(name.clone(), Entry { profile, layers });
        Ok(&self.entries[&name].profile)
    }

    /// The profile called `name`.
    pub fn get(&self, name: &str) -> Option<&Profile> {
        self.entries.get(name).map(|e| &e.profile)
    }

    /// The profiles' names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> + '_ {
        self.entries.keys().map(String::as_str)
    }

    /// The profiles, in name order.
    pub fn iter(&self) -> impl Iterator<Item = &Profile> + '_ {
        self.entries.values().map(|e| &e.profile)
    }

    /// Where the profile called `name` comes from: its files, base first
    /// (a built-in reads `built-in profile <name>`).
    pub fn origins(&self, name: &str) -> Option<Vec<&str>> {
        self.entries
            .get(name)
            .map(|e| e.layers.iter().map(|l| l.origin.as_str()).collect())
    }
}

fn parse<'t>(text: &'t str, origin: &str) -> Result<Spanned<DeTable<'t>>, ProfileError> {
    DeTable::parse(text).map_err(|e| {
        let (line, column) = e.span().map_or((1, 1), |s| position(text, s.start));
        ProfileError {
            origin: origin.to_owned(),
            line,
            column,
            message: e.message().to_owned(),
        }
    })
}

/// Builds the profile of the last layer from all the layers: the earlier
/// ones merged first, their positions forgotten (reported at 1:1 of the last
/// file), then the last one on top.
fn resolve(layers: &[Layer]) -> Result<Profile, ProfileError> {
    let Some((own, bases)) = layers.split_last() else {
        unreachable!("a profile has at least its own file");
    };
    let mut tree: Option<Spanned<DeTable<'_>>> = None;
    for layer in bases {
        let mut over = parse(&layer.text, &layer.origin)?;
        over.get_mut().remove("base");
        tree = Some(match tree {
            None => over,
            Some(mut base) => {
                merge_tables(
                    base.get_mut(),
                    over.into_inner(),
                    &layer.text,
                    &layer.origin,
                    true,
                )?;
                base
            }
        });
    }
    let mut over = parse(&own.text, &own.origin)?;
    over.get_mut().remove("base");
    let tree = match tree {
        None => over,
        Some(base) => {
            let span = over.span();
            let mut base = forget_table(base.into_inner());
            merge_tables(&mut base, over.into_inner(), &own.text, &own.origin, true)?;
            Spanned::new(span, base)
        }
    };
    let parsed = Profile::deserialize(toml::de::Deserializer::from(tree));
    Profile::checked(parsed, &own.text, &own.origin)
}

/// The arrays of tables merged entry by entry, and the key that identifies
/// an entry.
const KEYED: &[(&str, &str)] = &[
    ("command_status", "code"),
    ("receipt_error", "code"),
    ("receipt_stat", "stat"),
];

/// Applies `over` on top of `base`. `text` and `origin` are `over`'s, for
/// errors.
fn merge_tables<'t>(
    base: &mut DeTable<'t>,
    over: DeTable<'t>,
    text: &str,
    origin: &str,
    top: bool,
) -> Result<(), ProfileError> {
    for (key, value) in over {
        let span = value.span();
        let merged = match (base.remove(key.get_ref().as_ref()), value.into_inner()) {
            (Some(old), DeValue::Table(new)) if old.get_ref().is_table() => {
                let DeValue::Table(mut old) = old.into_inner() else {
                    unreachable!("checked above");
                };
                merge_tables(&mut old, new, text, origin, false)?;
                DeValue::Table(old)
            }
            (Some(old), DeValue::Array(new)) if top && old.get_ref().is_array() => {
                match KEYED
                    .iter()
                    .find(|(name, _)| *name == key.get_ref().as_ref())
                {
                    Some((_, id)) => {
                        let DeValue::Array(mut old) = old.into_inner() else {
                            unreachable!("checked above");
                        };
                        merge_keyed(&mut old, new, id, text, origin)?;
                        DeValue::Array(old)
                    }
                    None => DeValue::Array(new),
                }
            }
            (_, new) => new,
        };
        base.insert(key, Spanned::new(span, merged));
    }
    Ok(())
}

/// What identifies an entry of a keyed array.
#[derive(PartialEq, Eq)]
enum Id {
    Code(i128),
    Stat(String),
}

fn id_of(entry: &DeValue<'_>, id: &str) -> Option<Id> {
    match entry.as_table()?.get(id)?.get_ref() {
        DeValue::Integer(n) => i128::from_str_radix(n.as_str(), n.radix())
            .ok()
            .map(Id::Code),
        DeValue::String(s) => Some(Id::Stat(s.trim().to_ascii_lowercase())),
        _ => None,
    }
}

/// Merges the entries of `over` into `base` by `id`. Entries without a
/// usable id are added as they are (deserialising them reports the problem).
fn merge_keyed<'t>(
    base: &mut toml::de::DeArray<'t>,
    over: toml::de::DeArray<'t>,
    id: &str,
    text: &str,
    origin: &str,
) -> Result<(), ProfileError> {
    let mut given: Vec<Id> = Vec::new();
    for entry in over {
        let Some(key) = id_of(entry.get_ref(), id) else {
            base.push(entry);
            continue;
        };
        if given.contains(&key) {
            let (line, column) = position(text, entry.span().start);
            return Err(ProfileError {
                origin: origin.to_owned(),
                line,
                column,
                message: format!("this {id} is given twice in this file"),
            });
        }
        match base
            .iter_mut()
            .find(|e| id_of(e.get_ref(), id).as_ref() == Some(&key))
        {
            Some(old) => *old = entry,
            None => base.push(entry),
        }
        given.push(key);
    }
    Ok(())
}

/// The same tree with every position set to the start of the file.
fn forget_table(table: DeTable<'_>) -> DeTable<'_> {
    table
        .into_iter()
        .map(|(k, v)| {
            (
                Spanned::new(START, k.into_inner()),
                Spanned::new(START, forget(v.into_inner())),
            )
        })
        .collect()
}

fn forget(value: DeValue<'_>) -> DeValue<'_> {
    match value {
        DeValue::Table(t) => DeValue::Table(forget_table(t)),
        DeValue::Array(a) => DeValue::Array(
            a.into_iter()
                .map(|v| Spanned::new(START, forget(v.into_inner())))
                .collect(),
        ),
        other => other,
    }
}

const START: Range<usize> = 0..0;
