//! The README's shell lines as tests run them: `tests/quickstart.rs` against the control plane,
//! `tests/node_pod.rs` on a real node.

use super::cluster;

/// README.md of this repository.
pub fn readme() -> String {
    std::fs::read_to_string(cluster::repo_root().join("README.md")).expect("read README.md")
}

/// The README section `## {title}`, up to the next `## ` heading.
pub fn section(readme: &str, title: &str) -> String {
    let heading = format!("## {title}\n");
    let start = readme
        .find(&heading)
        .unwrap_or_else(|| panic!("README has no section {title}"));
    let body = &readme[start + heading.len()..];
    body[..body.find("\n## ").unwrap_or(body.len())].to_owned()
}

/// The commands of the `sh` code blocks of `text`: continuation lines joined, comments dropped.
pub fn sh_blocks(text: &str) -> Vec<Vec<String>> {
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("```sh\n") {
        let body = &rest[start + 6..];
        let end = body.find("```").expect("closed code block");
        let mut commands = Vec::new();
        let mut current = String::new();
        for line in body[..end].lines() {
            let line = if line.trim_start().starts_with('#') {
                ""
            } else {
                line.find(" #").map_or(line, |comment| &line[..comment])
            };
            let line = line.trim_end();
            match line.strip_suffix('\\') {
                Some(continued) => current.push_str(continued),
                None => {
                    current.push_str(line);
                    let command = current.split_whitespace().collect::<Vec<_>>().join(" ");
                    if !command.is_empty() {
                        commands.push(command);
                    }
                    current.clear();
                }
            }
        }
        blocks.push(commands);
        rest = &body[end + 3..];
    }
    blocks
}

/// The commands of the first `sh` block of the README's "Quick start on a cluster".
pub fn quick_start_commands(readme: &str) -> Vec<String> {
    sh_blocks(&section(readme, "Quick start on a cluster"))
        .into_iter()
        .next()
        .expect("the quick start has an sh block")
}
