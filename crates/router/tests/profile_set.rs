//! The profile registry: built-ins, overridden and extended by user files.

use tern_router::profile::BUILTIN;
use tern_router::profile::{BindKind, TlsMinimum};
use tern_router::{Class, FinalState, Profile, ProfileError, ProfileSet, Reason};

fn builtin() -> ProfileSet {
    ProfileSet::builtin().unwrap_or_else(|e| panic!("{e}"))
}

fn ovh() -> Profile {
    Profile::builtin("ovh")
        .expect("ovh is built in")
        .unwrap_or_else(|e| panic!("{e}"))
}

fn add(set: ProfileSet, origin: &str, text: &str) -> ProfileSet {
    set.with_user(origin, text)
        .unwrap_or_else(|e| panic!("{e}"))
}

fn refused(set: ProfileSet, origin: &str, text: &str) -> ProfileError {
    match set.with_user(origin, text) {
        Ok(set) => panic!("{origin} accepted: {set:?}"),
        Err(e) => e,
    }
}

const ACME: &str = r#"
name = "acme"
description = "Acme SMS, added by the user"
versions = ["3.4"]
bind_types = ["transceiver"]

[limits]
window = 3

[[command_status]]
code = 0x400
reason = "throttled"
class = "temporary"
meaning = "slow down"
"#;

const OVH_EU: &str = r#"# ovh-eu.toml: OVH with a smaller window
name = "ovh-eu"
base = "ovh"
description = "OVHcloud, EU account"

[limits]
window = 5

[[command_status]]
code = 0x401
reason = "invalid_message"
class = "temporary"
meaning = "Data Coding unsupported (retry elsewhere)"

[[command_status]]
code = 0x450
reason = "no_credit"
class = "temporary"
meaning = "Out of credit"

[[receipt_stat]]
stat = "delivery unknown"
state = "UNKNOWN"
"#;

#[test]
fn every_builtin_is_present() {
    let set = builtin();
    let names: Vec<&str> = set.names().collect();
    assert_eq!(names.len(), BUILTIN.len(), "{names:?}");
    for (name, _) in BUILTIN {
        let profile = set.get(name).unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(&profile.name, name);
    }
    assert_eq!(set.get("ovh"), Some(&ovh()));
    assert!(set.get("acme").is_none());
}

#[test]
fn a_new_provider_is_added_from_text() {
    let set = add(builtin(), "acme.toml", ACME);
    let acme = set.get("acme").expect("added");
    assert_eq!(acme.limits.window, Some(3));
    assert_eq!(acme.bind_types, [BindKind::Transceiver]);
    assert_eq!(acme.status(0x400).map(|e| e.class), Some(Class::Temporary));
    assert_eq!(set.names().count(), BUILTIN.len() + 1);
    assert_eq!(set.origins("acme"), Some(vec!["acme.toml"]));
    assert!(set.get("ovh").is_some(), "built-ins stay");
}

#[test]
fn a_profile_with_a_builtin_name_replaces_it() {
    let text = ACME.replace("name = \"acme\"", "name = \"ovh\"");
    let set = add(builtin(), "my-ovh.toml", &text);
    let mine = set.get("ovh").expect("still there");
    assert_eq!(mine.description, "Acme SMS, added by the user");
    assert_eq!(mine.limits.window, Some(3));
    assert_eq!(mine.tls.minimum, None, "nothing inherited without base");
    assert!(
        mine.status(0x401).is_none(),
        "nothing inherited without base"
    );
    assert_eq!(set.names().count(), BUILTIN.len());
    assert_eq!(set.origins("ovh"), Some(vec!["my-ovh.toml"]));
}

#[test]
fn a_base_gives_everything_the_file_does_not() {
    let set = add(builtin(), "ovh-eu.toml", OVH_EU);
    let base = ovh();
    let eu = set.get("ovh-eu").expect("added");
    assert_eq!(set.get("ovh"), Some(&base), "the base itself is unchanged");

    // Given by the file.
    assert_eq!(eu.name, "ovh-eu");
    assert_eq!(eu.description, "OVHcloud, EU account");
    assert_eq!(eu.limits.window, Some(5));
    let overridden = eu.status(0x401).expect("0x401");
    assert_eq!(overridden.class, Class::Temporary);
    assert_eq!(overridden.reason, Reason::InvalidMessage);
    assert_eq!(
        overridden.meaning,
        "Data Coding unsupported (retry elsewhere)"
    );
    let added = eu.status(0x450).expect("0x450 added");
    assert_eq!(
        (added.reason, added.class),
        (Reason::NoCredit, Class::Temporary)
    );
    assert_eq!(eu.stat("DELIVERY UNKNOWN"), Some(FinalState::Unknown));

    // Inherited, table by table and key by key.
    assert_eq!(eu.tls.minimum, Some(TlsMinimum::V13));
    assert_eq!(eu.limits.rate_per_session, base.limits.rate_per_session);
    assert_eq!(
        eu.limits.sessions_per_credential,
        base.limits.sessions_per_credential
    );
    assert_eq!(eu.status(0x400), base.status(0x400), "0x400 still there");
    assert_eq!(eu.status(0x402), base.status(0x402));
    assert_eq!(eu.command_status.len(), base.command_status.len() + 1);
    assert_eq!(eu.receipt_error, base.receipt_error);
    assert_eq!(eu.addresses, base.addresses);
    assert_eq!(eu.timers, base.timers);
    assert_eq!(eu.receipts, base.receipts);
    assert_eq!(eu.notes, base.notes);
    assert_eq!(eu.versions, base.versions);
    assert_eq!(
        set.origins("ovh-eu"),
        Some(vec!["built-in profile ovh", "ovh-eu.toml"])
    );
}

#[test]
fn other_arrays_are_replaced_whole() {
    let text = "name = \"ovh-note\"\nbase = \"ovh\"\nnotes = [\"mine\"]\n\
                [coding]\naccepted = [8]\n";
    let set = add(builtin(), "note.toml", text);
    let p = set.get("ovh-note").expect("added");
    assert_eq!(p.notes, ["mine"]);
    assert_eq!(p.coding.accepted, [8]);
    assert_eq!(p.coding.gsm7_carriage, ovh().coding.gsm7_carriage);
}

#[test]
fn a_base_can_be_an_earlier_user_profile_or_the_name_itself() {
    let set = add(builtin(), "ovh-eu.toml", OVH_EU);
    let set = add(
        set,
        "ovh-eu2.toml",
        "name = \"ovh-eu2\"\nbase = \"ovh-eu\"\n[limits]\nrate_per_session = 7\n",
    );
    let eu2 = set.get("ovh-eu2").expect("added");
    assert_eq!(eu2.limits.window, Some(5), "from ovh-eu");
    assert_eq!(eu2.limits.rate_per_session, Some(7));
    assert_eq!(eu2.tls.minimum, Some(TlsMinimum::V13), "from ovh");
    assert!(eu2.status(0x450).is_some(), "from ovh-eu");

    // name = base: change a built-in in place.
    let set = add(
        set,
        "ovh-patch.toml",
        "name = \"ovh\"\nbase = \"ovh\"\n[limits]\nwindow = 2\n",
    );
    let patched = set.get("ovh").expect("ovh");
    assert_eq!(patched.limits.window, Some(2));
    assert_eq!(patched.status(0x400), ovh().status(0x400));
    assert_eq!(set.get("ovh-eu").map(|p| p.limits.window), Some(Some(5)));
}

#[test]
fn an_unknown_base_names_the_file_and_the_line() {
    let text = "# mine\nname = \"x\"\n\nbase = \"nope\"\n";
    let err = refused(builtin(), "x.toml", text);
    assert_eq!(
        (err.origin.as_str(), err.line, err.column),
        ("x.toml", 4, 1)
    );
    assert!(err.message.contains("\"nope\""), "{err}");
    assert!(err.to_string().starts_with("x.toml:4:1: "), "{err}");

    // A base must come earlier: a file cannot be its own base.
    let err = refused(builtin(), "loop.toml", "name = \"loop\"\nbase = \"loop\"\n");
    assert_eq!((err.line, err.column), (2, 1), "{err}");
    assert!(err.message.contains("\"loop\""), "{err}");
}

#[test]
fn a_base_needs_a_name_of_its_own() {
    let err = refused(
        builtin(),
        "anon.toml",
        "base = \"ovh\"\n[limits]\nwindow = 1\n",
    );
    assert_eq!((err.origin.as_str(), err.line), ("anon.toml", 1), "{err}");
    assert!(err.message.contains("name"), "{err}");
}

#[test]
fn an_unknown_key_is_placed_in_the_users_file() {
    let text = "name = \"ovh-eu\"\nbase = \"ovh\"\n\n[limits]\nwindow = 5\n  windw = 6\n";
    let err = refused(builtin(), "ovh-eu.toml", text);
    assert_eq!(
        (err.origin.as_str(), err.line, err.column),
        ("ovh-eu.toml", 6, 3),
        "{err}"
    );
    assert!(err.message.contains("windw"), "{err}");

    // Without a base, the same.
    let text = ACME.replace("window = 3", "window = 3\nspeed = 9");
    let err = refused(builtin(), "acme.toml", &text);
    assert_eq!(
        (err.origin.as_str(), err.line, err.column),
        ("acme.toml", 9, 1),
        "{err}"
    );
}

#[test]
fn a_bad_value_names_the_file() {
    let text = "name = \"ovh-eu\"\nbase = \"ovh\"\n[coding]\ngsm7_carriage = \"zipped\"\n";
    let err = refused(builtin(), "ovh-eu.toml", text);
    assert_eq!(
        (err.origin.as_str(), err.line, err.column),
        ("ovh-eu.toml", 4, 17),
        "{err}"
    );
    assert!(err.message.contains("gsm7_carriage"), "{err}");

    // A wrong type in an overriding entry.
    let text = "name = \"ovh-eu\"\nbase = \"ovh\"\n[[command_status]]\ncode = 0x401\n\
                reason = \"invalid_message\"\nclass = \"sometimes\"\nmeaning = \"m\"\n";
    let err = refused(builtin(), "ovh-eu.toml", text);
    assert_eq!((err.origin.as_str(), err.line), ("ovh-eu.toml", 6), "{err}");

    // The same code twice in one file.
    let text = "name = \"ovh-eu\"\nbase = \"ovh\"\n\
                [[command_status]]\ncode = 0x401\nreason = \"invalid_message\"\nclass = \"temporary\"\nmeaning = \"m\"\n\
                [[command_status]]\ncode = 1025\nreason = \"invalid_message\"\nclass = \"permanent\"\nmeaning = \"m\"\n";
    let err = refused(builtin(), "ovh-eu.toml", text);
    assert_eq!((err.origin.as_str(), err.line), ("ovh-eu.toml", 8), "{err}");
}

#[test]
fn a_failed_file_leaves_the_set_unchanged() {
    let mut set = builtin();
    let before = format!("{set:?}");
    assert!(set
        .add_user("bad.toml", "name = \"ovh\"\nwindow = 1\n")
        .is_err());
    assert_eq!(format!("{set:?}"), before);
    assert_eq!(set.get("ovh"), Some(&ovh()));
}

#[test]
fn a_toml_syntax_error_names_the_file() {
    let err = refused(builtin(), "broken.toml", "name = \"x\"\n[limits\n");
    assert_eq!((err.origin.as_str(), err.line), ("broken.toml", 2), "{err}");
}
