//! The command parser: every command, its errors, and lines that must never panic.

use super::*;

#[test]
fn parses_the_commands() {
    assert_eq!(parse("status"), Ok(Command::Status(Target::Selected)));
    assert_eq!(parse("status 2"), Ok(Command::Status(Target::Number(2))));
    assert_eq!(
        parse("peers up #3"),
        Ok(Command::Peers(Target::Number(3), PeerSort::Up))
    );
    assert_eq!(
        parse("pieces 17"),
        Ok(Command::Pieces(Target::Selected, Some(17)))
    );
    assert_eq!(
        parse("pieces #2"),
        Ok(Command::Pieces(Target::Number(2), None))
    );
    assert_eq!(parse("speeds"), Ok(Command::Speed(Target::Selected)));
    assert_eq!(
        parse("add x.torrent -o /tmp/d"),
        Ok(Command::Add {
            source: "x.torrent".into(),
            dir: Some("/tmp/d".into())
        })
    );
    assert_eq!(
        parse("limit up 2MiB"),
        Ok(Command::Limit {
            up: true,
            rate: Some(2 << 20),
            target: None
        })
    );
    assert_eq!(
        parse("limit down 0 #1"),
        Ok(Command::Limit {
            up: false,
            rate: None,
            target: Some(Target::Number(1))
        })
    );
    assert_eq!(parse("quit"), Ok(Command::Quit));
}

#[test]
fn a_multibyte_first_character_is_an_unknown_command_not_a_panic() {
    for line in ["é", "ésta", "日本", "🦀 status", "ß#1"] {
        let e = parse(line).unwrap_err();
        assert!(e.contains("unknown command"), "{line}: {e}");
    }
}

proptest::proptest! {
    /// Whatever a user types (or a web client posts), parsing returns.
    #[test]
    fn parsing_any_line_never_panics(line in ".{0,64}") {
        let _ = parse(&line);
    }

    /// Lines built from real command words and odd arguments, so the
    /// argument paths (not just the unknown-command path) are exercised.
    #[test]
    fn parsing_commands_with_any_arguments_never_panics(
        cmd in proptest::sample::select(COMMANDS),
        args in proptest::collection::vec("(#?[0-9]{0,3}|[^ ]{0,6}|up|down|-o)", 0..4),
    ) {
        let _ = parse(&format!("{cmd} {}", args.join(" ")));
    }
}

#[test]
fn bad_commands_say_what_to_do() {
    assert!(parse("").unwrap_err().contains("help"));
    assert!(parse("stauts").unwrap_err().contains("did you mean status"));
    assert!(parse("limit sideways 2MiB").unwrap_err().contains("usage"));
    assert!(parse("limit up fast").unwrap_err().contains("not a rate"));
    assert!(parse("status 0").unwrap_err().contains("number from 1"));
    assert!(
        parse("pieces x")
            .unwrap_err()
            .contains("piece must be a number")
    );
}
