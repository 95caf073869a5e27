//! The `seed001` profile against its seed, `shared/seeds/001_8e9274a0ad73bd36.txt`
//! (a Russian provider's SMPP document). The expectations below are
//! transcribed from the seed, not from the profile.

use std::collections::BTreeSet;

use tern_router::profile::{LongMethod, Radix, SmppVersion};
use tern_router::{Class, FinalState, Profile, Reason, Scope};

fn profile() -> Profile {
    Profile::builtin("seed001")
        .expect("seed001 is a built-in profile")
        .unwrap_or_else(|e| panic!("seed001 does not load: {e}"))
}

/// One row of the seed's "Зарезервированные коды ошибок" table (plus the one
/// standard code the seed names).
struct SeedCode {
    /// The code as the seed writes it in hex.
    hex: u32,
    /// The code as the seed writes it in decimal, in brackets.
    decimal: u32,
    /// The seed's description.
    russian: &'static str,
    /// A word the English meaning must contain.
    keyword: &'static str,
    reason: Reason,
    class: Class,
    /// Whether only this provider refuses it (the next upstream is tried
    /// at once).
    scope: Scope,
}

/// The seed's table, transcribed. The class follows one rule: a refusal for
/// what the message is (its words, a blacklisted address) is permanent; a
/// refusal for the provider's state (balance, transport, registration
/// failure) is temporary, since another upstream or a later try can
/// succeed; what only this provider cannot take (its codings, its 160-byte
/// limit, its tariffs and routing for our account, a command it lacks) is
/// temporary with scope "upstream": the next upstream at once. The
/// duplicate-text limit is a throttle: the same message goes later.
const SEED_TABLE: &[SeedCode] = &[
    SeedCode {
        hex: 0x0400,
        decimal: 1024,
        russian: "Кодировка не распознана",
        keyword: "coding",
        reason: Reason::InvalidMessage,
        class: Class::Temporary,
        scope: Scope::Upstream,
    },
    SeedCode {
        hex: 0x0401,
        decimal: 1025,
        russian: "Слишком большой текст сообщения. Максимальная длина не должна превышать 160 байт.",
        keyword: "160",
        reason: Reason::InvalidMessage,
        class: Class::Temporary,
        scope: Scope::Upstream,
    },
    SeedCode {
        hex: 0x0402,
        decimal: 1026,
        russian: "Ошибка регистрации сообщения на отправку. При возникновении этой ошибки обратитесь в службу поддержки.",
        keyword: "registering",
        reason: Reason::SystemFailure,
        class: Class::Temporary,
        scope: Scope::Message,
    },
    SeedCode {
        hex: 0x0403,
        decimal: 1027,
        russian: "Не прошла проверка текста сообщения на наличие недопустимых слов и/или фраз",
        keyword: "forbidden words",
        reason: Reason::ContentRejected,
        class: Class::Permanent,
        scope: Scope::Message,
    },
    SeedCode {
        hex: 0x0404,
        decimal: 1028,
        russian: "Отправитель или получатель в черном списке",
        keyword: "blacklist",
        reason: Reason::Blacklisted,
        class: Class::Permanent,
        scope: Scope::Message,
    },
    SeedCode {
        hex: 0x0453,
        decimal: 1107,
        russian: "Сработало ограничение по отправке одинакового текста на один и тот же номер в течение небольшого промежутка времени.",
        keyword: "same text",
        reason: Reason::Throttled,
        class: Class::Temporary,
        scope: Scope::Message,
    },
    SeedCode {
        hex: 0x043C,
        decimal: 1084,
        russian: "Нет доступного тарифа для запрашиваемого направления.",
        keyword: "tariff",
        reason: Reason::NoRoute,
        class: Class::Temporary,
        scope: Scope::Upstream,
    },
    SeedCode {
        hex: 0x043F,
        decimal: 1087,
        russian: "Нет подходящего тарифа у вышестоящего контрагента.",
        keyword: "counterparty",
        reason: Reason::NoRoute,
        class: Class::Temporary,
        scope: Scope::Upstream,
    },
    SeedCode {
        hex: 0x045A,
        decimal: 1114,
        russian: "Политика маршрутизации не найдена.",
        keyword: "Routing policy",
        reason: Reason::NoRoute,
        class: Class::Temporary,
        scope: Scope::Upstream,
    },
    SeedCode {
        hex: 0x0446,
        decimal: 1094,
        russian: "Ошибка транспорта. При возникновении этой ошибки обратитесь в службу поддержки.",
        keyword: "Transport",
        reason: Reason::SystemFailure,
        class: Class::Temporary,
        scope: Scope::Message,
    },
    SeedCode {
        hex: 0x433,
        decimal: 1075,
        russian: "Недостаточно средств на счете.",
        keyword: "funds",
        reason: Reason::NoCredit,
        class: Class::Temporary,
        scope: Scope::Message,
    },
    // "На неподдерживаемые команды будут приходить GENERIC_NAK сообщения с
    // кодом ошибки ESME_RINVCMDID": the command is refused here, not the
    // message, so another upstream may take it.
    SeedCode {
        hex: 0x03,
        decimal: 3,
        russian: "На неподдерживаемые команды будут приходить GENERIC_NAK сообщения с кодом ошибки ESME_RINVCMDID.",
        keyword: "Unsupported command",
        reason: Reason::RejectedByVendor,
        class: Class::Temporary,
        scope: Scope::Upstream,
    },
];

#[test]
fn loads_under_its_name_with_a_source() {
    let p = profile();
    assert_eq!(p.name, "seed001");
    assert!(p.source.contains("001_8e9274a0ad73bd36"), "{}", p.source);
    assert!(!p.description.contains("placeholder"), "{}", p.description);
    assert!(p.description.contains("Russian"), "{}", p.description);
}

#[test]
fn the_seed_table_is_transcribed_consistently() {
    for row in SEED_TABLE {
        assert_eq!(row.hex, row.decimal, "{}", row.russian);
    }
    let codes: BTreeSet<u32> = SEED_TABLE.iter().map(|r| r.hex).collect();
    assert_eq!(codes.len(), SEED_TABLE.len(), "a code is transcribed twice");
    assert_eq!(SEED_TABLE.iter().filter(|r| r.hex >= 0x400).count(), 11);
}

#[test]
fn every_seed_code_has_the_class_and_reason_its_meaning_implies() {
    let p = profile();
    for row in SEED_TABLE {
        let entry = p.status(row.hex).unwrap_or_else(|| {
            panic!("0x{:X} ({}) missing: {}", row.hex, row.decimal, row.russian)
        });
        assert_eq!(entry.reason, row.reason, "0x{:X}: {}", row.hex, row.russian);
        assert_eq!(entry.class, row.class, "0x{:X}: {}", row.hex, row.russian);
        assert_eq!(entry.scope, row.scope, "0x{:X}: {}", row.hex, row.russian);
        assert!(
            entry
                .meaning
                .to_lowercase()
                .contains(&row.keyword.to_lowercase()),
            "0x{:X}: meaning {:?} should translate {:?}",
            row.hex,
            entry.meaning,
            row.russian
        );
    }
}

#[test]
fn the_profile_lists_exactly_the_seed_codes() {
    let p = profile();
    let seed: BTreeSet<u32> = SEED_TABLE.iter().map(|r| r.hex).collect();
    let listed: BTreeSet<u32> = p.command_status.iter().map(|e| e.code).collect();
    assert_eq!(listed.len(), p.command_status.len());
    assert_eq!(listed, seed, "profile codes differ from the seed's");
}

#[test]
fn refused_submits_end_or_fail_over_by_class() {
    let p = profile();
    let words = p.submit_outcome(0x403).expect("0x403 listed");
    assert_eq!(
        (words.state, words.reason, words.class),
        (
            FinalState::Rejectd,
            Reason::ContentRejected,
            Class::Permanent
        )
    );
    assert_eq!(words.err_text(), "903");
    let funds = p.submit_outcome(0x433).expect("0x433 listed");
    assert_eq!(
        (funds.state, funds.reason, funds.class),
        (FinalState::Undeliv, Reason::NoCredit, Class::Temporary)
    );
    assert_eq!(funds.err_text(), "904");
    // "Расшифровку ошибок можно найти в спецификации SMPP 3.4": codes
    // outside the seed's table are left to the generic profile.
    assert!(p.status(0x08).is_none());
    assert!(p.submit_outcome(0x58).is_none());
    // The duplicate-text limit: a throttle, not refused content.
    let duplicate = p.submit_outcome(0x453).expect("0x453 listed");
    assert_eq!(
        (duplicate.reason, duplicate.class),
        (Reason::Throttled, Class::Temporary)
    );
}

#[test]
fn versions_and_bind_types() {
    let p = profile();
    // "Протокол обмена определяется спецификацией SMPP версии 3.4."
    assert_eq!(p.versions, [SmppVersion::V34]);
    // "отправить команду BIND_TRANSMITTER или BIND_TRANSCEIVER"
    let binds: BTreeSet<&str> = p.bind_types.iter().map(|b| b.as_str()).collect();
    assert_eq!(binds, BTreeSet::from(["transmitter", "transceiver"]));
}

#[test]
fn timers() {
    let p = profile();
    // "клиенту дается 10 секунд, что бы отправить команду BIND_...": Tern
    // binds at once, the fact is a note.
    assert!(p.notes.iter().any(|n| n.contains("10 s")));
    // "отвечать на все пакеты ... в течение 1 минуты, иначе соединение будет
    // разорвано без отсылки UNBIND"
    assert_eq!(p.timers.response_timeout_secs, Some(60));
    // The seed gives no enquire_link interval and no periodic unbind.
    assert_eq!(p.timers.enquire_link_secs, None);
}

#[test]
fn limits_and_sender() {
    let p = profile();
    // 0x401: "Максимальная длина не должна превышать 160 байт."
    assert_eq!(p.limits.short_message_max, Some(160));
    // No session, window or rate figures in the seed.
    assert_eq!(p.limits.sessions_per_credential, None);
    assert_eq!(p.limits.window, None);
    assert_eq!(p.limits.rate_per_session, None);
    // "любую информацию (11 знаков) в строку номера отправителя.
    // Поддерживаются цифры, символы латинского алфавита, знаки препинания пробел."
    let alpha = p
        .addresses
        .alphanumeric
        .as_ref()
        .expect("alphanumeric sender rule");
    assert_eq!(alpha.max_len, Some(11));
    for c in [' ', '.', ',', '-'] {
        assert!(
            alpha.extra_chars.contains(c),
            "{c:?} in {:?}",
            alpha.extra_chars
        );
    }
    // The 11 characters are an alphanumeric sender's; a numeric one is an
    // E.164 number, up to 15 digits.
    let international = p
        .addresses
        .international
        .as_ref()
        .expect("international sender rule");
    assert_eq!(international.max_len, Some(15));
    assert_eq!(p.long_messages.method, LongMethod::Udh);
    // Nothing about TLS in the seed.
    assert!(!p.tls.required);
}

#[test]
fn receipt_format() {
    let p = profile();
    // "id:IIIIIIIIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm done
    // date:YYMMDDhhmm stat:DDDDDDD err:E Text: . . ."
    assert!(p.receipts.text);
    assert_eq!(p.receipts.err_radix, Radix::Decimal);
    assert!(
        p.notes.iter().any(|n| n.contains("'Text:'")),
        "the capital-T text key is noted"
    );
    // The seed gives no stat or err tables for receipts.
    assert!(p.receipt_error.is_empty());
    assert!(p.receipt_stat.is_empty());
    assert_eq!(p.stat("DELIVRD"), Some(FinalState::Delivrd));
}

#[test]
fn facts_without_a_field_are_noted() {
    let p = profile();
    let notes = p.notes.join("\n");
    for needle in [
        "query_sm",               // active status polling
        "registered_delivery",    // passive, preferred
        "generic_nack",           // unsupported commands
        "ESME_RINVCMDID",         // ... with this status
        "8056",                   // port
        "9001",                   // port
        "XXXX.X",                 // system_id form
        "IP addresses",           // registered before use
        "No MO",                  // receiving is not supported
        "SMPP 3.4 specification", // other codes
    ] {
        assert!(
            notes.contains(needle),
            "notes should mention {needle:?}:\n{notes}"
        );
    }
}
