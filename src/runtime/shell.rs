//! POSIX shell quoting for `sysfile run --print`: one line a user can paste into `sh`.

/// Quotes one word for a POSIX shell: left bare when it is made only of characters no shell
/// treats specially, otherwise wrapped in single quotes with each `'` written as `'\''`.
pub fn quote(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Quotes every word and joins them with spaces.
pub fn join<S: AsRef<str>>(words: &[S]) -> String {
    words
        .iter()
        .map(|w| quote(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_words_stay_bare() {
        assert_eq!(quote("/usr/bin/docker"), "/usr/bin/docker");
        assert_eq!(quote("/run:exec,mode=755"), "/run:exec,mode=755");
        assert_eq!(quote("--stop-timeout"), "--stop-timeout");
        assert_eq!(
            quote("/sys/fs/cgroup:/sys/fs/cgroup:rw"),
            "/sys/fs/cgroup:/sys/fs/cgroup:rw"
        );
        assert_eq!(
            quote("SYSTEMD_CGROUP_ENABLE_LEGACY_FORCE=1"),
            "SYSTEMD_CGROUP_ENABLE_LEGACY_FORCE=1"
        );
    }

    #[test]
    fn special_words_are_single_quoted() {
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote("'"), r"''\'''");
        assert_eq!(quote(r#"say "hi""#), r#"'say "hi"'"#);
        assert_eq!(quote("$HOME"), "'$HOME'");
        assert_eq!(quote("a;b"), "'a;b'");
        assert_eq!(quote("*"), "'*'");
        assert_eq!(quote("~root"), "'~root'");
        assert_eq!(quote("x\ny"), "'x\ny'");
        assert_eq!(quote("back\\slash"), "'back\\slash'");
    }

    #[test]
    fn join_quotes_each_word() {
        assert_eq!(
            join(&["docker", "run", "--name", "my box", "", "it's"]),
            r"docker run --name 'my box' '' 'it'\''s'"
        );
    }

    /// The quoting round-trips through a real shell when one is there.
    #[test]
    fn round_trips_through_sh() {
        let words = [
            "plain",
            "a b",
            "",
            "it's",
            "$x `y`",
            "\"q\"",
            "tab\there",
            "new\nline",
            "!",
            "\\",
        ];
        let script = format!("printf '%s\\0' {}", join(&words));
        let Ok(out) = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .output()
        else {
            return;
        };
        let got: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .split_terminator('\0')
            .map(str::to_string)
            .collect();
        assert_eq!(got, words);
    }
}
