//! The documents stay true: RUNBOOK.md documents every action with every
//! argument and result, and the README's two opening commands are the ones CI
//! runs.

use remedy_dsl::action::COMMON_RESULTS;
use remedy_dsl::ActionKind;

fn read(name: &str) -> String {
    std::fs::read_to_string(format!("{}/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[test]
fn runbook_md_documents_every_action_argument_and_result() {
    let doc = read("RUNBOOK.md");
    let mut missing = Vec::new();
    for kind in ActionKind::ALL {
        let heading = format!("### {}", kind.name());
        let Some(start) = doc.lines().position(|l| l.trim() == heading) else {
            missing.push(format!("heading `{heading}`"));
            continue;
        };
        let section: String = doc
            .lines()
            .skip(start + 1)
            .take_while(|l| !l.starts_with("## ") && !l.starts_with("### "))
            .collect::<Vec<_>>()
            .join("\n");
        let names = kind
            .args()
            .iter()
            .map(|a| a.name)
            .chain(kind.results().unwrap_or(&[]).iter().map(|r| r.name));
        for name in names {
            if !section.contains(&format!("`{name}`")) {
                missing.push(format!("`{name}` in the section of {}", kind.name()));
            }
        }
    }
    for r in COMMON_RESULTS {
        if !doc.contains(&format!("`{}`", r.name)) {
            missing.push(format!("common result `{}`", r.name));
        }
    }
    assert!(
        missing.is_empty(),
        "RUNBOOK.md lacks:\n{}",
        missing.join("\n")
    );
}

#[test]
fn readme_opens_with_the_two_commands_ci_runs() {
    let readme = read("README.md");
    let block: Vec<&str> = readme
        .split("```")
        .nth(1)
        .unwrap()
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(
        block.len(),
        2,
        "the README opens with exactly two commands: {block:?}"
    );
    let ci = read(".ci/run");
    for line in block {
        let command = line.split('#').next().unwrap().trim();
        assert!(
            ci.lines().any(|l| l.trim() == command),
            "`.ci/run` does not run `{command}`"
        );
    }
}
